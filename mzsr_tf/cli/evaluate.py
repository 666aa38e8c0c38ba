"""``scripts/evaluate.py`` (``mzsr evaluate``): the benchmark table over test sets x kernels x steps, and figures."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import (EXIT_OK, REPO_ROOT, OutputError, _add_verbose, _parser, _run_script, log,
                                     run_command, split_names)
from mzsr_tf.cli.flags import TileProgress, _add_tiling_flags, tile_policy_from_flags
from mzsr_tf.config import DEFAULT_SON_GRID, PRESETS, SON_GRIDS


def evaluate_parser() -> argparse.ArgumentParser:
    """``scripts/evaluate.py``: the benchmark table over test sets x kernels x steps, and figures."""
    parser = _parser("scripts/evaluate.py",
        description="Benchmark table: MZSR after n steps beside bicubic and ZSSR-like baselines, on paper "
                    "test sets. Writes OUT/results.json, OUT/results.csv, OUT/results.md and OUT/figures/*.png.",
        epilog="example:\n  python scripts/evaluate.py --checkpoint checkpoints/Model/Directx2 "
               "--testsets dataset/testsets/benchmark --steps 0 1 10 --baselines bicubic --kernels g20 "
               "--sets Set5,BSD100,Set14 --out results/eval_g20\n"
               "--checkpoint takes a TF1/TF2 prefix or folder for every preset, or PRESET=PATH entries ("
               + ", ".join(PRESETS) + "); default: the preset's checkpoint in checkpoints/.\n"
               "exit codes: 0 success, 2 bad input (the message names the file, set or kernel), 1 anything else")
    parser.add_argument("--checkpoint", nargs="+", default=None, help="PATH or PRESET=PATH entries")
    parser.add_argument("--testsets", required=True, help="test-set folder made by scripts/make_testsets.py")
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 1, 10],
                        help="MZSR step counts (0 = before adaptation)")
    parser.add_argument("--baselines", nargs="*", default=["bicubic"],
                        help="comma/space separated: bicubic, zssr (none: give the flag without values)")
    parser.add_argument("--zssr-steps", type=int, default=2000, help="step budget of the zssr baseline")
    parser.add_argument("--kernels", nargs="+", default=None, help="kernel names (default: all in the test set)")
    parser.add_argument("--sets", nargs="+", default=None, help="set names (default: all in the test set)")
    _add_tiling_flags(parser)
    parser.add_argument("--son-grid", choices=SON_GRIDS, default=DEFAULT_SON_GRID,
                        help="exact (default): MZSR's son of each input cropped to a multiple of the scale (beyond "
                             "the reference); reference: of the whole input, as the reference (rows labelled); as "
                             "scripts/main.py --son-grid")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="MZSR columns as the self-ensemble of eight flips/rotations, each adapted (its own "
                             "table: never mixed with plain MZSR)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="meta-test every kernel with this preset's learning-rate schedule at the kernel's "
                             "own scale (e.g. multiscale on g20 and g20x4; default: the preset each kernel names)")
    parser.add_argument("--limit", type=int, default=0,
                        help="evaluate the first N images (by name) of each set only, e.g. a validation subset "
                             "(default 0: all)")
    parser.add_argument("--figure-images", nargs="+", default=None,
                        help="image names for the crop figures (default: the first image of each set)")
    parser.add_argument("--out", default="results/evaluation", help="output folder")
    return _add_verbose(parser)


def evaluate_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/evaluate.py``; the command line is recorded in the results."""
    def check(args) -> Optional[str]:
        args.command = "python scripts/evaluate.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        return args.zssr_steps < 1 and f"--zssr-steps must be a positive integer, got {args.zssr_steps}"
    return _run_script(evaluate_parser(), evaluate_from_flags, argv, check)


def evaluate_from_flags(args) -> int:
    """``scripts/evaluate.py``: the benchmark table over test sets × kernels × steps, and figures."""
    return run_command(_evaluate, args)


def _evaluate(args) -> int:
    from mzsr_tf import evaluate
    from mzsr_tf.atomic import check_output_folder, write_errors_as
    from mzsr_tf.checkpoints import checkpoints_for_presets

    cells = evaluate.find_cells(args.testsets, split_names(args.kernels), split_names(args.sets))
    check_output_folder(args.out, "--out")  # before any image is computed
    presets = sorted({evaluate.cell_setting(cell, args.preset)[0] for cell in cells})
    checkpoints = checkpoints_for_presets(args.checkpoint, presets, REPO_ROOT)
    zssr = evaluate.ZSSRConfig(max_steps=args.zssr_steps)
    log.info("%d cells (%s), steps %s, baselines %s", len(cells),
             ", ".join(f"{c.paper_kernel.name}/{c.set_name}" for c in cells), args.steps,
             ", ".join(split_names(args.baselines)) or "none")
    results = evaluate.evaluate(cells, checkpoints, steps=args.steps, baselines=split_names(args.baselines),
                                zssr=zssr, figure_images=split_names(args.figure_images), log=log.info,
                                self_ensemble=args.self_ensemble, preset=args.preset, limit=args.limit,
                                son_grid=args.son_grid, tiling=tile_policy_from_flags(args, TileProgress()),
                                son_crops=args.fast_crops or 0)
    with write_errors_as(OutputError):
        paths = evaluate.write_results(results, args.out, command=getattr(args, "command", None),
                                       testsets=args.testsets)
    log.info("\n%s", evaluate.markdown_table(results))
    log.info("[*] %d images in %.1f s; wrote %s", len(results["images"]), results["seconds_total"],
             ", ".join(paths.values()))
    return EXIT_OK
