#!/usr/bin/env python
"""Convert an MZSR checkpoint (the authors' TF1 files, or any checkpoint mzsr-tf reads).

    python scripts/convert_checkpoint.py checkpoints/Model/Directx2 \\
        --weights checkpoints/converted/Directx2 --saved-model exports/Directx2

SOURCE is a TF1 or TF2 checkpoint prefix, a folder holding one (its latest) or a SavedModel folder.
Several SOURCEs are averaged weight by weight (e.g. the last checkpoints of a run, as in stochastic
weight averaging):

    python scripts/convert_checkpoint.py runs/meta/Model1/ckpt-{300,400,500} --weights averaged/model
Outputs (at least one):
  --weights PREFIX      weights only, under the reference's names (PREFIX.index + PREFIX.data-*);
                        small, stable across Keras versions, readable by the reference's TF1 Saver
  --tf2-checkpoint DIR  a TF2 tf.train.Checkpoint (DIR/ckpt-0), the format training resumes from
  --saved-model DIR     a SavedModel with signature serving_default: ilr [N,H,W,3] -> sr

Exit codes: 0 success, 2 bad input (the message names the file), 1 anything else.
"""
import argparse
import logging
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a clone without installing too

EXIT_BAD_INPUT = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="+",
                        help="checkpoint prefix (TF1 or TF2), a folder holding one, or a SavedModel; "
                             "several are averaged")
    parser.add_argument("--weights", metavar="PREFIX", help="write a weights-only checkpoint at PREFIX")
    parser.add_argument("--tf2-checkpoint", metavar="DIR", help="write a TF2 training checkpoint into DIR")
    parser.add_argument("--saved-model", metavar="DIR", help="write a SavedModel into DIR")
    parser.add_argument("--width", type=int, default=64, help="channels of the hidden layers (default 64)")
    parser.add_argument("--depth", type=int, default=8, help="number of convolutions (default 8)")
    args = parser.parse_args(argv)
    if not (args.weights or args.tf2_checkpoint or args.saved_model):
        parser.error("nothing to write: give at least one of --weights, --tf2-checkpoint, --saved-model")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from mzsr_tf import checkpoints
    from mzsr_tf.config import ModelConfig
    from mzsr_tf.model import MZSRNet

    try:
        model = MZSRNet(ModelConfig(width=args.width, depth=args.depth))
        if len(args.source) == 1:
            checkpoints.load_weights(model, args.source[0])
        else:
            checkpoints.load_average(model, args.source)
    except (checkpoints.CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    import tensorflow as tf
    try:
        if args.weights:
            checkpoints.export_weights(model, args.weights)
        if args.tf2_checkpoint:
            checkpoints.save_checkpoint(checkpoints.make_manager(args.tf2_checkpoint, model=model))
        if args.saved_model:
            checkpoints.export_saved_model(model, args.saved_model)
    except (OSError, tf.errors.OpError) as error:
        print(f"error: cannot write the converted checkpoint: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
