#!/usr/bin/env python
"""Convert an MZSR checkpoint (the authors' TF1 files, or any checkpoint mzsr-tf reads), or average several.

Flags, examples and exit codes: `python scripts/convert_checkpoint.py --help` (defined in mzsr_tf/cli/convert_checkpoint.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.convert_checkpoint_script(argv)


if __name__ == "__main__":
    sys.exit(main())
