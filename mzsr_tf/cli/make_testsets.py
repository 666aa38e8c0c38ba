"""``scripts/make_testsets.py`` (``mzsr make_testsets``): the paper's LR inputs, kernels and modcropped GT."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, OutputError, _add_verbose, _parser, _run_script, log, run_command, split_names


def make_testsets_parser() -> argparse.ArgumentParser:
    """``scripts/make_testsets.py``: the paper's LR inputs, kernels and modcropped GT."""
    parser = _parser("scripts/make_testsets.py",
        description="Make the paper's benchmark test sets: LR inputs, kernel.mat and modcropped GT for "
                    "each kernel. --hr is a folder of images (one set) or a folder of set folders. Writes "
                    "OUT/Input/<kernel>/<set>/*.png, OUT/Input/<kernel>/kernel.mat, OUT/GT/<set>/ (x2), "
                    "OUT/GT_x4/<set>/ (x4) and OUT/testset.json.",
        epilog="example:\n  python scripts/make_testsets.py --hr benchmark "
               "--out dataset/testsets/benchmark --kernels g20 gani --sets Set5,Set14\n"
               "kernels: the names of mzsr_tf.testsets.PAPER_KERNELS (g02 g20 gani b13 g20x4), and rk: one\n"
               "  random kernel per image, saved beside it as <image>.mat (blind benchmark; README, 'Test sets')\n"
               "exit codes: 0 success, 2 bad input (the message names the file or kernel), 1 anything else")
    parser.add_argument("--hr", required=True, help="folder of HR images, or of folders of HR images (sets)")
    parser.add_argument("--out", required=True, help="test-set folder to write, e.g. dataset/testsets/benchmark")
    parser.add_argument("--kernels", nargs="+", default=None,
                        help="kernel names (default: the paper's five; rk only when named)")
    parser.add_argument("--sets", nargs="+", default=None, help="set names under --hr (default: all)")
    return _add_verbose(parser)


def make_testsets_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/make_testsets.py``."""
    return _run_script(make_testsets_parser(), make_testsets_from_flags, argv)


def make_testsets_from_flags(args) -> int:
    """``scripts/make_testsets.py``: the paper's LR inputs, kernels and modcropped GT."""
    return run_command(_make_testsets, args)


def _make_testsets(args) -> int:
    from mzsr_tf.atomic import check_output_folder, write_errors_as
    from mzsr_tf.testsets import PAPER_KERNELS, make_testset
    check_output_folder(args.out, "--out")
    with write_errors_as(OutputError):
        make_testset(args.hr, args.out, split_names(args.kernels) or list(PAPER_KERNELS),
                     split_names(args.sets), log=log.info)
    log.info("test set written to %s", args.out)
    return EXIT_OK
