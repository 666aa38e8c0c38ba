#!/usr/bin/env python
"""The blind benchmark: MZSR on random-kernel test sets given true, estimated, no (bicubic) and fixed kernels.

Flags, examples and exit codes: `python scripts/blind_benchmark.py --help` (defined in mzsr_tf/cli/blind_benchmark.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.blind_benchmark_script(argv)


if __name__ == "__main__":
    sys.exit(main())
