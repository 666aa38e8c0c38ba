"""``scripts/learning_curve.py`` (``mzsr learning_curve``): meta-test every checkpoint of a run and plot PSNR vs iteration."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, OutputError, _add_verbose, _parser, _run_script, run_command
from mzsr_tf.cli.flags import MODEL_CHOICES, MODEL_HELP
from mzsr_tf.config import preset_for_model


def learning_curve_parser() -> argparse.ArgumentParser:
    """``scripts/learning_curve.py``: meta-test every checkpoint of a run and plot PSNR vs iteration."""
    parser = _parser("scripts/learning_curve.py",
        description="Meta-test every checkpoint of a training run on image folders and plot PSNR vs "
                    "meta-iteration. A run started from a checkpoint of an earlier run (a later training "
                    "phase) is drawn after it: --before EARLIER.json@STEP (repeatable, in training order) "
                    "takes an earlier run's curve JSON up to the step the next phase started from; the "
                    "figure and --chain-out show the joined curve, --out keeps this run's rows.",
        epilog="example:\n  python scripts/learning_curve.py --run runs/direct_x2/Model2 "
               "--folder Set5=dataset/testsets/benchmark/Input/g20/Set5,dataset/testsets/benchmark/GT/Set5,"
               "dataset/testsets/benchmark/Input/g20/kernel.mat --out runs/direct_x2/curve.json "
               "--png runs/direct_x2/curve.png --every 2 --limit 10 --model 0\n"
               "exit codes: 0 success, 2 bad input, 1 anything else")
    parser.add_argument("--run", required=True, help="folder of ckpt-N checkpoints")
    parser.add_argument("--folder", action="append", required=True,
                        help="NAME=LR_DIR,GT_DIR,KERNEL.mat (repeatable)")
    parser.add_argument("--model", type=int, choices=MODEL_CHOICES, default=0,
                        help=f"preset (test-time schedule, scale): {MODEL_HELP}")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10], help="adaptation step counts")
    parser.add_argument("--every", type=int, default=1, help="score every N-th checkpoint (and the last)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N images of each folder")
    parser.add_argument("--out", required=True,
                        help="JSON of rows; its rows are reused when run, folders, steps, --limit and "
                             "--model are the same, else scored again; another run's JSON is refused")
    parser.add_argument("--png", default=None, help="figure path")
    parser.add_argument("--before", action="append", default=[], metavar="JSON@STEP",
                        help="an earlier phase's curve JSON and the step the next phase started from")
    parser.add_argument("--chain-out", default=None, help="JSON of the joined curve (with --before)")
    return _add_verbose(parser)


def learning_curve_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/learning_curve.py``."""
    return _run_script(learning_curve_parser(), learning_curve_from_flags, argv)


def _read_phase(spec: str):
    """``JSON@STEP`` -> (rows of that curve JSON, STEP); ValueError naming the file when unusable."""
    path, _, step = spec.rpartition("@")
    if not path or not step.isdigit():
        raise ValueError(f"--before {spec!r} is not CURVE.json@STEP")
    from mzsr_tf.curves import read_curve
    saved = read_curve(path)
    if saved is None:
        raise ValueError(f"{path}: not a learning-curve JSON (no such file)")
    return saved["rows"], int(step)


def learning_curve_from_flags(args) -> int:
    """Score the run's checkpoints, join earlier phases, write the JSON and the figure."""
    def curve(args) -> int:
        from mzsr_tf import curves, plots
        from mzsr_tf.atomic import check_output_file, write_errors_as, write_json
        for option, path in (("--out", args.out), ("--png", args.png), ("--chain-out", args.chain_out)):
            if path:
                check_output_file(path, option)  # before any checkpoint is scored
        folders = {}
        for spec in args.folder:
            name, _, paths = spec.partition("=")
            parts = paths.split(",")
            if not name or len(parts) != 3:
                raise ValueError(f"--folder {spec!r} is not NAME=LR_DIR,GT_DIR,KERNEL.mat")
            folders[name] = tuple(parts)
        config = preset_for_model(args.model).adaptation_config()
        earlier = [_read_phase(spec) for spec in args.before]
        with write_errors_as(OutputError):
            rows = curves.learning_curve(args.run, folders, config, args.steps, args.every, args.limit, args.out)
            if earlier:
                rows = curves.chain(earlier + [(rows, None)])
                if args.chain_out:
                    write_json(args.chain_out, {"phases": args.before + [args.out], "steps": args.steps,
                                                "rows": rows}, indent=1)
                    print(f"joined curve: {args.chain_out}")
            if args.png:
                plots.plot_learning_curve(rows, args.png)
                print(f"figure: {args.png}")
        return EXIT_OK
    return run_command(curve, args)
