#!/usr/bin/env python
"""MZSR with the reference's flags: meta-test a folder of LR images (default), or meta-train (--train).

Flags, examples and exit codes: `python scripts/main.py --help` (defined in mzsr_tf/cli/main.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.main_script(argv)


if __name__ == "__main__":
    sys.exit(main())
