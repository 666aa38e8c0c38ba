#!/usr/bin/env python
"""Benchmark table: MZSR after n steps beside bicubic and ZSSR-like baselines, on paper test sets.

    python scripts/evaluate.py --checkpoint ../shared/mzsr_reference/Pretrained/Pretrained \
        --testsets dataset/testsets/benchmark --steps 0 1 10 --baselines bicubic \
        --kernels g20 --sets Set5,BSD100,Set14 --out results/eval_g20

--checkpoint takes a TF1/TF2 prefix or folder for every preset, or PRESET=PATH entries (direct_x2,
bicubic_x2, direct_x4: the presets the kernels name); default: the preset's checkpoint in checkpoints/.
Writes OUT/results.json, OUT/results.csv, OUT/results.md and OUT/figures/*.png.

Exit codes: 0 success, 2 bad input (the message names the file, set or kernel), 1 anything else.
"""
import argparse
import os
import shlex
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a clone without installing too


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", default=None, help="PATH or PRESET=PATH entries")
    parser.add_argument("--testsets", required=True, help="test-set folder made by scripts/make_testsets.py")
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 1, 10],
                        help="MZSR step counts (0 = before adaptation)")
    parser.add_argument("--baselines", nargs="*", default=["bicubic"],
                        help="comma/space separated: bicubic, zssr (none: give the flag without values)")
    parser.add_argument("--zssr-steps", type=int, default=2000, help="step budget of the zssr baseline")
    parser.add_argument("--kernels", nargs="+", default=None, help="kernel names (default: all in the test set)")
    parser.add_argument("--sets", nargs="+", default=None, help="set names (default: all in the test set)")
    parser.add_argument("--figure-images", nargs="+", default=None,
                        help="image names for the crop figures (default: the first image of each set)")
    parser.add_argument("--out", default="results/evaluation", help="output folder")
    args = parser.parse_args(argv)
    if args.zssr_steps < 1:
        parser.error(f"--zssr-steps must be a positive integer, got {args.zssr_steps}")
    args.command = "python scripts/evaluate.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mzsr_tf import cli

    return cli.evaluate_from_flags(args)


if __name__ == "__main__":
    sys.exit(main())
