#!/usr/bin/env python
"""Large-scale "bicubic" pretraining of the MZSR network (the reference's Large-Scale_Training).

Flags, examples and exit codes: `python scripts/pretrain.py --help` (defined in mzsr_tf/cli/pretrain.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.pretrain_script(argv)


if __name__ == "__main__":
    sys.exit(main())
