#!/usr/bin/env python
"""Fit the edge-based kernel estimator's calibration on training images.

Flags, examples and exit codes: `python scripts/calibrate_edge_kernel.py --help` (defined in mzsr_tf/cli/calibrate_edge_kernel.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.calibrate_edge_kernel_script(argv)


if __name__ == "__main__":
    sys.exit(main())
