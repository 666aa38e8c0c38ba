#!/usr/bin/env python
"""Benchmark table: MZSR after n steps beside bicubic and ZSSR-like baselines, on paper test sets.

Flags, examples and exit codes: `python scripts/evaluate.py --help` (defined in mzsr_tf/cli/evaluate.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.evaluate_script(argv)


if __name__ == "__main__":
    sys.exit(main())
