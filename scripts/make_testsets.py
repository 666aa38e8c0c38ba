#!/usr/bin/env python
"""Make the paper's benchmark test sets: LR inputs, kernel.mat and modcropped GT for each kernel.

    python scripts/make_testsets.py --hr ../shared/datasets/benchmark --out dataset/testsets/benchmark \
        [--kernels g02 g20 gani b13 g20x4] [--sets Set5,Set14,BSD100]

--hr is a folder of images (one set) or a folder of set folders. Writes OUT/Input/<kernel>/<set>/*.png,
OUT/Input/<kernel>/kernel.mat, OUT/GT/<set>/ (x2) and OUT/GT_x4/<set>/ (x4), and OUT/testset.json.
Kernels (mzsr_tf/testsets.py): g02 = g^d_0.2, g20 = g^d_2.0, gani = g^d_ani, b13 = g^b_1.3, g20x4 = g^d_2.0 x4.

Exit codes: 0 success, 2 bad input (the message names the file or kernel), 1 anything else.
"""
import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a clone without installing too


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr", required=True, help="folder of HR images, or of folders of HR images (sets)")
    parser.add_argument("--out", required=True, help="test-set folder to write, e.g. dataset/testsets/benchmark")
    parser.add_argument("--kernels", nargs="+", default=None, help="kernel names (default: all five)")
    parser.add_argument("--sets", nargs="+", default=None, help="set names under --hr (default: all)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mzsr_tf import cli

    return cli.make_testsets_from_flags(args)


if __name__ == "__main__":
    sys.exit(main())
