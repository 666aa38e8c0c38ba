"""Flags to library calls for the scripts: resolve presets, checkpoints and kernels, report errors.

Scripts stay thin (parse flags, call one function here, exit with its code): 0 success, 2 bad input
(a one-line message naming the file on stderr), 1 anything else.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from mzsr_tf.config import Preset, preset_for_model

EXIT_OK = 0
EXIT_BAD_INPUT = 2

log = logging.getLogger("mzsr_tf")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of the message (so captured output works)."""

    def emit(self, record):
        self.stream = sys.stdout
        super().emit(record)


def _setup_logging() -> None:
    """Library INFO messages go to stdout as plain lines, once."""
    logger = logging.getLogger("mzsr_tf")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
        logger.propagate = False


def _bad_input_errors():
    from mzsr_tf.checkpoints import CheckpointError
    from mzsr_tf.kernels import KernelError
    from mzsr_tf.meta_test import MetaTestError
    return (CheckpointError, KernelError, MetaTestError)


def resolve_checkpoint(requested: Optional[str], preset: Preset, repo_root: str) -> str:
    """``requested`` if given; else the authors' published file for ``preset`` if it was dropped
    into ``checkpoints/Model/``; else the project's own model for the preset, if there is one."""
    if requested:
        return requested
    candidates = [preset.published_checkpoint]
    if preset.project_checkpoint:
        candidates.append(preset.project_checkpoint)
    for candidate in candidates:
        path = os.path.join(repo_root, candidate)
        if os.path.exists(path + ".index") or os.path.isdir(path):
            if candidate != preset.published_checkpoint:
                log.info("no published %s checkpoint at %s; using the project's own model %s",
                         preset.reference_name, preset.published_checkpoint, candidate)
            return path
    from mzsr_tf.checkpoints import CheckpointError
    raise CheckpointError(
        f"no checkpoint for --model {preset.model_index} ({preset.reference_name}): looked for "
        + " and ".join(candidates) + "; pass --checkpoint PREFIX")


def meta_test_from_flags(args) -> int:
    """``scripts/main.py`` test mode."""
    _setup_logging()
    try:
        return _meta_test(args)
    except _bad_input_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _meta_test(args) -> int:
    from mzsr_tf.adaptation import MetaTester
    from mzsr_tf.checkpoints import load_weights
    from mzsr_tf.kernels import load_kernel
    from mzsr_tf.meta_test import run_folder
    from mzsr_tf.model import MZSRNet

    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    preset = preset_for_model(args.model)
    scale = args.scale if args.scale else preset.scale
    config = preset.adaptation_config(num_steps=args.num_steps, scale=scale, noise_std=args.noise,
                                      back_projection=args.backprojection)
    log.info("model %d: %s, x%g, %s down-sampling, %d step(s), inner_lr %s", preset.model_index,
             preset.reference_name, scale, config.ds_method, config.num_steps,
             list(config.inner_lr.rates(config.num_steps)))
    if args.kernelpath:
        kernel = load_kernel(args.kernelpath)
        log.info("kernel %s (%dx%d)", args.kernelpath, *kernel.shape)
    else:
        kernel = None
        log.info("no --kernelpath: the son is made by bicubic ('cubic') down-sampling")
    checkpoint = resolve_checkpoint(args.checkpoint, preset, repo_root)
    model = MZSRNet()
    loaded = load_weights(model, checkpoint)
    tester = MetaTester(model.trainable_variables, config)
    run_folder(tester, args.inputpath, args.savepath, kernel, gt_dir=args.gtpath or None,
               kernel_path=args.kernelpath or None,
               extra_info={"checkpoint": loaded, "model": preset.reference_name})
    return EXIT_OK


def meta_train_from_flags(args) -> int:
    """``scripts/main.py --train``."""
    _setup_logging()
    from mzsr_tf import meta_train
    try:
        return meta_train.train_from_flags(args)
    except _bad_input_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
