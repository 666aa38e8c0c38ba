#!/usr/bin/env python
"""Cut training patches from folders of HR images into TFRecord (the reference's schema) or HDF5.

Flags, examples and exit codes: `python scripts/generate_tfrecord.py --help` (defined in mzsr_tf/cli/generate_tfrecord.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone too

from mzsr_tf import cli  # noqa: E402  (imports no TensorFlow: the flags set its environment first)


def main(argv=None) -> int:
    return cli.generate_tfrecord_script(argv)


if __name__ == "__main__":
    sys.exit(main())
