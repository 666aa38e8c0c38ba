#!/usr/bin/env python
"""Meta-test every checkpoint of a training run on image folders and plot PSNR against meta-iteration.

Flags, examples and exit codes: `python scripts/learning_curve.py --help` (defined in mzsr_tf/cli/learning_curve.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.learning_curve_script(argv)


if __name__ == "__main__":
    sys.exit(main())
