#!/usr/bin/env python
"""Regenerate dataset/demo/ (LR inputs, GT, kernel.mat) from scikit-image's public-domain sample photographs.

Flags, examples and exit codes: `python scripts/make_demo.py --help` (defined in mzsr_tf/cli/make_demo.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.make_demo_script(argv)


if __name__ == "__main__":
    sys.exit(main())
