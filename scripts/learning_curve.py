#!/usr/bin/env python
"""Meta-test every checkpoint of a training run on image folders and plot PSNR vs meta-iteration.

    python scripts/learning_curve.py --run runs/direct_x2/Model2 \
        --folder Set5=../shared/mzsr_reference/Input/g20/Set5,../shared/mzsr_reference/GT/Set5,../shared/mzsr_reference/Input/g20/kernel.mat \
        --out runs/direct_x2/curve.json --png runs/direct_x2/curve.png [--every 2] [--limit 10] [--model 0]

A run started from a checkpoint of an earlier run (a later training phase) is drawn after it:
--before EARLIER.json@STEP (repeatable, in training order) takes an earlier run's curve JSON up to the step
the next phase started from; the figure and --chain-out show the joined curve, --out keeps this run's rows.

Exit codes: 0 success, 2 bad input, 1 anything else.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read_phase(spec: str):
    """``JSON@STEP`` -> (rows of that curve JSON, STEP); ValueError naming the file when unusable."""
    path, _, step = spec.rpartition("@")
    if not path or not step.isdigit():
        raise ValueError(f"--before {spec!r} is not CURVE.json@STEP")
    try:
        with open(path) as f:
            return json.load(f)["rows"], int(step)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a learning-curve JSON ({error})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="folder of ckpt-N checkpoints")
    parser.add_argument("--folder", action="append", required=True,
                        help="NAME=LR_DIR,GT_DIR,KERNEL.mat (repeatable)")
    parser.add_argument("--model", type=int, default=0, help="preset (test-time schedule, scale)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--every", type=int, default=1, help="score every N-th checkpoint (and the last)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N images of each folder")
    parser.add_argument("--out", required=True, help="JSON of rows (reused: finished rows are not recomputed)")
    parser.add_argument("--png", default=None, help="figure path")
    parser.add_argument("--before", action="append", default=[], metavar="JSON@STEP",
                        help="an earlier phase's curve JSON and the step the next phase started from")
    parser.add_argument("--chain-out", default=None, help="JSON of the joined curve (with --before)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from mzsr_tf import curves, plots
    from mzsr_tf.config import preset_for_model

    folders = {}
    for spec in args.folder:
        name, _, paths = spec.partition("=")
        parts = paths.split(",")
        if not name or len(parts) != 3:
            print(f"error: --folder {spec!r} is not NAME=LR_DIR,GT_DIR,KERNEL.mat", file=sys.stderr)
            return 2
        folders[name] = tuple(parts)
    config = preset_for_model(args.model).adaptation_config()
    try:
        earlier = [_read_phase(spec) for spec in args.before]
        rows = curves.learning_curve(args.run, folders, config, args.steps, args.every, args.limit, args.out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if earlier:
        rows = curves.chain(earlier + [(rows, None)])
        if args.chain_out:
            with open(args.chain_out, "w") as f:
                json.dump({"phases": args.before + [args.out], "steps": args.steps, "rows": rows}, f, indent=1)
            print(f"joined curve: {args.chain_out}")
    if args.png:
        plots.plot_learning_curve(rows, args.png)
        print(f"figure: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
