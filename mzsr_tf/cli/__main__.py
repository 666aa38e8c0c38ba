"""``python -m mzsr_tf.cli <command> [flags]``: the ``mzsr`` command (``mzsr_tf.cli.mzsr``)."""
import sys

from mzsr_tf.cli import mzsr

if __name__ == "__main__":
    sys.exit(mzsr())
