"""``scripts/pretrain.py`` (``mzsr pretrain``): large-scale "bicubic" pretraining (the reference's Large-Scale_Training)."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import _add_gpu, _add_verbose, _parser, _run_script, run_command
from mzsr_tf.cli.flags import _add_training_flags, _report_training, _training_folder
from mzsr_tf.config import PRECISIONS, PretrainConfig


def pretrain_parser() -> argparse.ArgumentParser:
    """``scripts/pretrain.py``: large-scale "bicubic" pretraining (the reference's Large-Scale_Training)."""
    parser = _parser("scripts/pretrain.py",
        description="Large-scale 'bicubic' pretraining of the MZSR network. Records come from "
                    "scripts/generate_tfrecord.py --mode pretrain; an existing run is resumed.",
        epilog="example:\n  python scripts/pretrain.py --trial 1 --tfrecord dataset/records/train_SR_X2.tfrecord\n"
               "exit codes: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input")
    _add_gpu(parser)
    _add_training_flags(parser, PretrainConfig)
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                        help="dtype of the convolutions (default float32; variables stay float32)")
    return _add_verbose(parser)


def pretrain_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/pretrain.py``."""
    return _run_script(pretrain_parser(), pretrain_from_flags, argv)


def pretrain_from_flags(args) -> int:
    """``scripts/pretrain.py``: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input."""
    def train(args) -> int:
        from mzsr_tf.pretrain import run_pretraining
        run, directory = _training_folder(args, PretrainConfig)
        return _report_training(run_pretraining(run, directory, requested_step=args.step))
    return run_command(train, args)
