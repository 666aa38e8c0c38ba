"""Flags that several commands share, and their translation into library settings: ``--model``,
``--estimator``, the tiling flags (``scripts/main.py``, ``scripts/evaluate.py``) and the training flags
(``scripts/main.py --train``, ``scripts/pretrain.py``)."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from mzsr_tf.cli.conventions import EXIT_OK, _with_option, log
from mzsr_tf.config import (DEFAULT_MAX_MEMORY, MIN_TILE, PRESETS, STRATEGIES, ConfigError, MetaTrainConfig,
                            PretrainConfig, RunConfig, override, preset_for_model, read_json_object)


MODEL_CHOICES = tuple(sorted(p.model_index for p in PRESETS.values()))
MODEL_HELP = ", ".join(f"{p.model_index} {p.reference_name}" for p in
                       sorted(PRESETS.values(), key=lambda p: p.model_index))
ESTIMATOR_CHOICES = ("edges", "kernelgan")
"""``--estimator``: the names of ``mzsr_tf.blind.ESTIMATORS`` (listed here so that no TensorFlow is imported to parse)."""
ESTIMATOR_DEFAULT = ESTIMATOR_CHOICES[0]


def estimator_from_flags(name: str, iterations: Optional[int], option: str):
    """The kernel estimator ``name`` (``blind.make_estimator``) with ``iterations`` if given (a bad value, or
    iterations for the edges estimator, named by ``option``)."""
    from mzsr_tf.blind import make_estimator
    try:
        return make_estimator(name, iterations)
    except ValueError as error:
        raise ConfigError(f"{option} {iterations}: {error}") from None


# --------------------------------------------------------------------------- tiling

def tile_flag(value: str) -> Optional[int]:
    """``--tile``: ``auto`` (``None``), or a whole number of pixels >= 0 (``0``: the whole image at once)."""
    if value == "auto":
        return None
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number of pixels, got {value!r}") from None
    if tile < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (the whole image), a positive number of pixels or 'auto', "
                                         f"got {value}")
    if 0 < tile < MIN_TILE:
        raise argparse.ArgumentTypeError(f"{tile} is smaller than {MIN_TILE} pixels, twice the network's halo "
                                         f"(its receptive radius, 8 pixels)")
    return tile


_MEMORY_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2, "G": 1024 ** 3,
                 "GB": 1024 ** 3}


def memory_flag(value: str) -> float:
    """``--max-memory``: a positive size in bytes, with an optional unit K, M or G (binary), e.g. ``2G``."""
    text = value.strip().upper()
    number = text.rstrip("KMGB")
    unit = text[len(number):]
    try:
        size = float(number) * _MEMORY_UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a size such as 2G, 1500M or 3000000000, got {value!r}") from None
    if not size > 0 or size != size:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return size


def _add_tiling_flags(parser) -> None:
    parser.add_argument("--tile", type=tile_flag, default=None, metavar="N|auto",
                        help="adapt and super-resolve in tiles of N input pixels with exact halos (same "
                             "result up to float rounding; 0: the whole image at once, as the reference); "
                             "auto (default): the whole image if it fits in --max-memory, else the largest "
                             "tile that does")
    parser.add_argument("--fast-crops", type=int, default=None, metavar="N",
                        help="fast mode for large photos (beyond the paper): each adaptation step on N seeded "
                             "random 64x64 crops of the son instead of the whole son, so a step costs the same "
                             "at any size (default 0: the whole son, the paper's exact step)")
    parser.add_argument("--max-memory", type=memory_flag, default=None, metavar="SIZE",
                        help=f"peak memory --tile auto aims under (default {DEFAULT_MAX_MEMORY // 1024 ** 3}G)")


def tile_policy_from_flags(args, progress=None):
    """The ``tiling.TilePolicy`` of ``--tile`` and ``--max-memory`` (a ``TilingError`` is bad input)."""
    from mzsr_tf.tiling import TilePolicy
    max_memory = getattr(args, "max_memory", None)
    return TilePolicy(tile=getattr(args, "tile", None), progress=progress,
                      max_memory=DEFAULT_MAX_MEMORY if max_memory is None else max_memory)


class TileProgress:
    """Progress of a tiled meta-test: a bar redrawn in place on a terminal, one line per adaptation step
    and per SR image when the output is piped (``TilePolicy.progress``)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = self.stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, what: str, step: int, done: int, total: int) -> None:
        label = f"adaptation step {step}" if what == "step" else f"SR image after {step} step(s)"
        if done == 1:
            self.start = time.perf_counter()
        seconds = time.perf_counter() - self.start
        if self.bar:
            filled = int(30 * done / total)
            end = "\n" if done == total else ""
            print(f"\r  {label}: [{'#' * filled}{'.' * (30 - filled)}] tile {done}/{total} {seconds:.1f} s",
                  end=end, file=self.stream, flush=True)
        elif done == total:
            print(f"  {label}: {total} tile{'' if total == 1 else 's'}, {seconds:.1f} s", file=self.stream, flush=True)


# --------------------------------------------------------------------------- training runs

def _add_training_flags(parser: argparse.ArgumentParser, stage: type) -> None:
    """The flags both training scripts share."""
    unit = "meta-iteration" if stage is MetaTrainConfig else "step"
    parser.add_argument("--trial", type=int, default=0, help="training run number (folder Model<trial>)")
    parser.add_argument("--step", type=int, default=None,
                        help="the step to resume; must match the latest checkpoint of the run "
                             "(default: resume whatever is there, or start)")
    parser.add_argument("--config", default=None,
                        help=f"JSON file of {stage.__name__} options (a recipe), or a run's config.json")
    parser.add_argument("--iterations", type=int, default=None, help=f"train until this {unit}")
    parser.add_argument("--tfrecord", default=None, help="training records (TFRecord or HDF5)")
    parser.add_argument("--checkpoint-dir", default=None,
                        help=f"runs go to CHECKPOINT_DIR/Model<trial> (default {stage().checkpoint_dir})")
    parser.add_argument("--print-every", type=int, default=None, help=f"log and summarise every N {unit}s")
    parser.add_argument("--save-every", type=int, default=None, help=f"checkpoint every N {unit}s")
    parser.add_argument("--strategy", choices=STRATEGIES, default=None,
                        help="tf.distribute strategy (default: default); tasks/batches are split across replicas")


def _read_overrides(path: Optional[str], stage: type) -> Dict[str, Any]:
    """The ``--config`` JSON file as ``RunConfig`` overrides (``{}`` without one).

    The file holds ``stage`` options (``{"patch_size": 32, ...}``, a recipe), a saved stage config
    (``{"class": "MetaTrainConfig", "values": {...}}``) or a saved ``RunConfig`` (a run's
    ``config.json``).
    """
    if not path:
        return {}
    try:
        data = read_json_object(path, f"{stage.__name__} options")
    except ConfigError as error:
        raise ConfigError(f"--config {error}") from None
    if data.get("class") == "RunConfig":
        values = dict(data.get("values", {}))
        values.pop("preset", None)
        return values
    values = data.get("values", data)
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: 'values' must be an object of {stage.__name__} options")
    return {"train": values}


def _apply(run: RunConfig, overrides: Mapping[str, Any], source: str) -> RunConfig:
    try:
        return override(run, overrides)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def run_config_from_flags(args, stage: type = MetaTrainConfig) -> Tuple[RunConfig, str]:
    """The ``RunConfig`` and run folder of ``scripts/main.py --train`` (``stage=MetaTrainConfig``) or
    ``scripts/pretrain.py`` (``PretrainConfig``): the preset of ``--model`` (the authors' meta-batch
    settings), then ``--config`` JSON, then the individual flags, in that order.

    When the run folder already holds a run, its saved configuration takes the preset's place, so a
    run resumes with its own settings; what ``--config`` or a flag changes beyond how long it runs is
    refused later (``training.check_resumable``).
    """
    from mzsr_tf.training import run_directory, saved_run_config

    model_index = getattr(args, "model", None)
    preset = preset_for_model(model_index if model_index is not None else 0) if stage is MetaTrainConfig \
        else None
    base = RunConfig(train=preset.meta_train_config() if preset else PretrainConfig(),
                     preset=preset.name if preset else None)
    overrides = _read_overrides(getattr(args, "config", None), stage)
    run = _finish(_apply(base, overrides, f"--config {args.config}"), args, stage)
    directory = run_directory(run.train.checkpoint_dir, args.trial)
    saved = saved_run_config(directory)
    if saved is not None:
        if model_index is not None and saved.preset and saved.preset != preset.name:
            from mzsr_tf.training import ResumeError
            raise ResumeError(f"{directory} holds a run of preset {saved.preset}, not --model {model_index} "
                              f"({preset.name}); omit --model to resume it")
        run = _finish(_apply(saved, overrides, f"--config {args.config}"), args, stage)
    return run, directory


def _finish(run: RunConfig, args, stage: type) -> RunConfig:
    """``run`` with the individual flags of the training scripts applied (each error names its flag)."""
    length_key = "meta_iter" if stage is MetaTrainConfig else "max_steps"
    flags = [("--iterations", length_key, getattr(args, "iterations", None)),
             ("--tfrecord", "tfrecord_path", getattr(args, "tfrecord", None)),
             ("--checkpoint-dir", "checkpoint_dir", getattr(args, "checkpoint_dir", None)),
             ("--print-every", "print_every", getattr(args, "print_every", None)),
             ("--save-every", "save_every", getattr(args, "save_every", None))]
    if stage is MetaTrainConfig:
        flags += [("--first-order-until", "second_order_from_step", getattr(args, "first_order_until", None)),
                  ("--freeze-loss-weights", "freeze_loss_weights",
                   True if getattr(args, "freeze_loss_weights", False) else None)]
        transfer = getattr(args, "transfer", None)
        if transfer is not None:  # '' or 'none': random weights
            run = override(run, {"train": {"transfer_checkpoint": None if transfer in ("", "none") else transfer}})
    for option, key, value in flags:
        if value is not None:
            run = _with_option(option, value, lambda: override(run, {"train": {key: value}}))
    for option, key in (("--precision", "precision"), ("--strategy", "strategy")):
        value = getattr(args, key, None)
        if value is not None:
            run = _with_option(option, value, lambda: override(run, {"runtime": {key: value}}))
    return run


def _training_folder(args, stage: type) -> Tuple[RunConfig, str]:
    """``run_config_from_flags``, and the run folder checked writable before anything is created in it (an
    ``OutputPathError`` naming ``--checkpoint-dir``, or ``checkpoint_dir`` when ``--config`` or the default
    gave it)."""
    from mzsr_tf.atomic import check_output_folder
    run, directory = run_config_from_flags(args, stage)
    check_output_folder(directory, "--checkpoint-dir" if getattr(args, "checkpoint_dir", None) else "checkpoint_dir")
    return run, directory


def _report_training(result) -> int:
    log.info("[*] %s: step %d, checkpoint %s", result.status, result.step, result.checkpoint)
    return EXIT_OK
