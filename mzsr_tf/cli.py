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
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""Where relative preset paths (``checkpoints/...``) are looked up."""

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


def _run_reporting_bad_input(run, args, errors) -> int:
    """``run(args)`` with library messages on stdout; an error of ``errors`` becomes one line on stderr
    and exit code 2 (bad input)."""
    _setup_logging()
    try:
        return run(args)
    except errors as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def meta_test_from_flags(args) -> int:
    """``scripts/main.py`` test mode."""
    return _run_reporting_bad_input(_meta_test, args, _bad_input_errors())


def _meta_test(args) -> int:
    from mzsr_tf.adaptation import MetaTester
    from mzsr_tf.checkpoints import load_weights
    from mzsr_tf.kernels import load_kernel
    from mzsr_tf.meta_test import run_folder
    from mzsr_tf.model import MZSRNet

    preset = preset_for_model(args.model)
    scale = args.scale if args.scale else preset.scale
    config = preset.adaptation_config(num_steps=args.num_steps, scale=scale, noise_std=args.noise,
                                      back_projection=args.backprojection, precision=args.precision)
    log.info("model %d: %s, x%g, %s down-sampling, %d step(s), inner_lr %s, %s", preset.model_index,
             preset.reference_name, scale, config.ds_method, config.num_steps,
             list(config.inner_lr.rates(config.num_steps)), config.precision)
    if args.kernelpath:
        kernel = load_kernel(args.kernelpath)
        log.info("kernel %s (%dx%d)", args.kernelpath, *kernel.shape)
    else:
        kernel = None
        log.info("no --kernelpath: the son is made by bicubic ('cubic') down-sampling")
    checkpoint = resolve_checkpoint(args.checkpoint, preset, REPO_ROOT)
    model = MZSRNet()
    loaded = load_weights(model, checkpoint)
    tester = MetaTester(model.trainable_variables, config)
    run_folder(tester, args.inputpath, args.savepath, kernel, gt_dir=args.gtpath or None,
               kernel_path=args.kernelpath or None,
               extra_info={"checkpoint": loaded, "model": preset.reference_name})
    return EXIT_OK


def meta_train_from_flags(args) -> int:
    """``scripts/main.py --train``."""
    from mzsr_tf import meta_train
    return _run_reporting_bad_input(meta_train.train_from_flags, args, _bad_input_errors())


# --------------------------------------------------------------------------- test sets and evaluation

def _evaluation_errors():
    from mzsr_tf.evaluate import EvaluationError
    from mzsr_tf.testsets import TestSetError
    return _bad_input_errors() + (EvaluationError, TestSetError)


def split_names(values) -> list:
    """Flag values given as ``a,b c`` (commas and/or spaces) as a list of names; None stays None."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


def make_testsets_from_flags(args) -> int:
    """``scripts/make_testsets.py``: the paper's LR inputs, kernels and modcropped GT."""
    return _run_reporting_bad_input(_make_testsets, args, _evaluation_errors())


def _make_testsets(args) -> int:
    from mzsr_tf.testsets import PAPER_KERNELS, make_testset
    make_testset(args.hr, args.out, split_names(args.kernels) or list(PAPER_KERNELS),
                 split_names(args.sets), log=log.info)
    log.info("test set written to %s", args.out)
    return EXIT_OK


def checkpoints_for_presets(entries, presets, repo_root: str) -> dict:
    """The checkpoint of each preset from ``--checkpoint`` entries.

    An entry is ``PATH`` (for every preset) or ``PRESET=PATH`` (e.g. ``bicubic_x2=checkpoints/Model/
    Bicubicx2``); a preset with neither gets ``resolve_checkpoint``'s default (the authors' file in
    ``checkpoints/Model/`` or the project's own model).
    """
    from mzsr_tf.config import PRESETS, get_preset
    from mzsr_tf.evaluate import EvaluationError
    common, by_preset = None, {}
    for entry in entries or []:
        name, sep, path = entry.partition("=")
        if sep and name in PRESETS:
            by_preset[name] = path
        elif common is not None:
            raise EvaluationError(f"--checkpoint: two paths for every preset ({common}, {entry}); "
                                  "use PRESET=PATH to give one per preset")
        else:
            common = entry
    return {preset: by_preset.get(preset) or resolve_checkpoint(common, get_preset(preset), repo_root)
            for preset in presets}


def evaluate_from_flags(args) -> int:
    """``scripts/evaluate.py``: the benchmark table over test sets × kernels × steps, and figures."""
    return _run_reporting_bad_input(_evaluate, args, _evaluation_errors())


def _evaluate(args) -> int:
    from mzsr_tf import evaluate

    cells = evaluate.find_cells(args.testsets, split_names(args.kernels), split_names(args.sets))
    presets = sorted({cell.kernel.preset for cell in cells})
    checkpoints = checkpoints_for_presets(args.checkpoint, presets, REPO_ROOT)
    zssr = evaluate.ZSSRConfig(max_steps=args.zssr_steps)
    log.info("%d cells (%s), steps %s, baselines %s", len(cells),
             ", ".join(f"{c.kernel.name}/{c.set_name}" for c in cells), args.steps,
             ", ".join(split_names(args.baselines)) or "none")
    results = evaluate.evaluate(cells, checkpoints, steps=args.steps, baselines=split_names(args.baselines),
                                zssr=zssr, figure_images=split_names(args.figure_images), log=log.info)
    paths = evaluate.write_results(results, args.out, command=getattr(args, "command", None),
                                   testsets=args.testsets)
    log.info("\n%s", evaluate.markdown_table(results))
    log.info("[*] %d images in %.1f s; wrote %s", len(results["images"]), results["seconds_total"],
             ", ".join(paths.values()))
    return EXIT_OK
