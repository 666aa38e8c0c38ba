#!/usr/bin/env python
"""Estimate the blur kernel of each image of a folder from the image alone (KernelGAN).

Flags, examples and exit codes: `python scripts/estimate_kernel.py --help` (defined in mzsr_tf/cli/estimate_kernel.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.estimate_kernel_script(argv)


if __name__ == "__main__":
    sys.exit(main())
