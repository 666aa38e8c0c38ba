#!/usr/bin/env python
"""Make the paper's benchmark test sets: LR inputs, kernel.mat and modcropped GT for each kernel.

Flags, examples and exit codes: `python scripts/make_testsets.py --help` (defined in mzsr_tf/cli/make_testsets.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.make_testsets_script(argv)


if __name__ == "__main__":
    sys.exit(main())
