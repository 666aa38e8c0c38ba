"""``scripts/convert_checkpoint.py`` (``mzsr convert_checkpoint``): read any checkpoint mzsr-tf reads, write other formats."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, _add_verbose, _parser, _run_script, _with_option, output_errors, run_command


def convert_checkpoint_parser() -> argparse.ArgumentParser:
    """``scripts/convert_checkpoint.py``: read any checkpoint mzsr-tf reads, write other formats."""
    parser = _parser("scripts/convert_checkpoint.py",
        description="Convert an MZSR checkpoint (the authors' TF1 files, or any checkpoint mzsr-tf reads). "
                    "SOURCE is a TF1 or TF2 checkpoint prefix, a folder holding one (its latest) or a "
                    "SavedModel folder. Several SOURCEs are averaged weight by weight (e.g. the last "
                    "checkpoints of a run, as in stochastic weight averaging).",
        epilog="examples:\n"
               "  python scripts/convert_checkpoint.py checkpoints/Model/Directx2 "
               "--weights checkpoints/converted/Directx2 --saved-model exports/Directx2\n"
               "  python scripts/convert_checkpoint.py runs/meta/Model1/ckpt-{300,400,500} --weights averaged/model\n"
               "outputs (at least one):\n"
               "  --weights PREFIX      weights only, under the reference's names (PREFIX.index + PREFIX.data-*);\n"
               "                        small, stable across Keras versions, readable by the reference's TF1 Saver\n"
               "  --tf2-checkpoint DIR  a TF2 tf.train.Checkpoint (DIR/ckpt-0), the format training resumes from\n"
               "  --saved-model DIR     a SavedModel with signature serving_default: ilr [N,H,W,3] -> sr\n"
               "exit codes: 0 success, 2 bad input (the message names the file), 1 anything else")
    parser.add_argument("source", nargs="+",
                        help="checkpoint prefix (TF1 or TF2), a folder holding one, or a SavedModel; "
                             "several are averaged")
    parser.add_argument("--weights", metavar="PREFIX", help="write a weights-only checkpoint at PREFIX")
    parser.add_argument("--tf2-checkpoint", metavar="DIR", help="write a TF2 training checkpoint into DIR")
    parser.add_argument("--saved-model", metavar="DIR", help="write a SavedModel into DIR")
    parser.add_argument("--width", type=int, default=64, help="channels of the hidden layers (default 64)")
    parser.add_argument("--depth", type=int, default=8, help="number of convolutions (default 8)")
    return _add_verbose(parser)


def convert_checkpoint_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/convert_checkpoint.py``."""
    return _run_script(convert_checkpoint_parser(), convert_checkpoint_from_flags, argv,
                       lambda args: not (args.weights or args.tf2_checkpoint or args.saved_model) and
                       "nothing to write: give at least one of --weights, --tf2-checkpoint, --saved-model")


def convert_checkpoint_from_flags(args) -> int:
    """Load (or average) the sources, then write each requested format."""
    def convert(args) -> int:
        from mzsr_tf import checkpoints
        from mzsr_tf.config import ModelConfig
        from mzsr_tf.model import MZSRNet
        from mzsr_tf.atomic import check_output_file, check_output_folder
        model_config = _with_option("--width/--depth", f"{args.width}/{args.depth}",
                                    lambda: ModelConfig(width=args.width, depth=args.depth))
        if args.weights:  # before the sources load
            check_output_file(args.weights + ".index", "--weights")
        for flag, folder in (("--tf2-checkpoint", args.tf2_checkpoint), ("--saved-model", args.saved_model)):
            if folder:
                check_output_folder(folder, flag)  # before the sources load
        model = MZSRNet(model_config)
        if len(args.source) == 1:
            checkpoints.load_weights(model, args.source[0])
        else:
            checkpoints.load_average(model, args.source)
        outputs = (("--weights", args.weights, checkpoints.export_weights),
                   ("--tf2-checkpoint", args.tf2_checkpoint,
                    lambda model, folder: checkpoints.save_checkpoint(checkpoints.make_manager(folder, model=model))),
                   ("--saved-model", args.saved_model, checkpoints.export_saved_model))
        for flag, path, write in outputs:
            if path:
                with output_errors(f"cannot write the converted checkpoint: {flag} {path}", path):
                    write(model, path)
        return EXIT_OK
    return run_command(convert, args)
