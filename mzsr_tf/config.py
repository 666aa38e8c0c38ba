"""Every hyper-parameter of mzsr-tf, as frozen dataclasses, and the four published presets.

This module is the single source of truth for defaults and allowed values: the defaults below are the
paper's and the reference implementation's (github ``JWSoh/MZSR``, ``config.py``, ``test.py``,
``train.py``).  Each field is declared with ``_option`` (its documentation and its allowed range), and
every dataclass checks the types and ranges of its fields when it is constructed (``ConfigError``,
naming the field and the range), so every entry point -- flags, ``--config`` JSON files, saved runs,
library calls -- gets the same checks.

A training run is described by one ``RunConfig``: the network (``ModelConfig``), the stage's
hyper-parameters (``MetaTrainConfig`` or ``PretrainConfig``) and the runtime (``RuntimeConfig``:
precision, distribution strategy).  It is built from a preset, then a ``--config`` JSON file, then
flags (``mzsr_tf.cli``), saved whole as ``config.json`` beside the checkpoints and read back whole on
resume (``save_run_config`` / ``load_run_config``; the older ``config.json`` + ``run.json`` pair is
still read).

Presets (``PRESETS``, also reachable by the reference's ``--model`` number through ``preset_for_model``):

==========  ==============  =====  =========  =======================  =================
``--model``  name            scale  down-samp  test-time inner_lr         meta batch (tasks
                                                schedule (step: lr)        x images/set)
==========  ==============  =====  =========  =======================  =================
0            ``direct_x2``   2      direct     0: 2e-2, 1-3: 1e-2, 4+: 5e-3   5 x 4
1            ``multiscale``  2*     direct     0-2: 1e-2, 3+: 5e-3             5 x 8
2            ``bicubic_x2``  2      bicubic    0-2: 1e-2, 3+: 1e-3             4 x 8
3            ``direct_x4``   4      direct     0: 1e-2, 1-4: 5e-3, 5+: 1e-3    5 x 8
==========  ==============  =====  =========  =======================  =================

(*) the multi-scale model is meta-trained on scales 2.0, 2.2, ..., 4.0 and tested at 2 by default.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from mzsr_tf.atomic import write_json

DS_METHODS = ("direct", "bicubic")
"""How a blurred image is subsampled: every ``scale``-th pixel, or MATLAB's bicubic ``imresize``."""

PRECISIONS = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}

MIN_TILE = 16
"""The smallest tile side of a tiled meta-test (``mzsr_tf.tiling``): twice the paper's network's halo (its
8-pixel receptive radius), below which the halos cost more than the tiles."""

DEFAULT_MAX_MEMORY = 2 * 1024 ** 3
"""``--max-memory``'s default, 2 GiB: the peak memory ``--tile auto`` aims under (a laptop's share)."""

PUBLISHED_MODEL_DIR = "checkpoints/Model"
"""Where a user drops the authors' published meta-trained models (their repository's ``Model/`` folder)."""

TRANSFER_AUTO = "auto"
"""``MetaTrainConfig.transfer_checkpoint``'s default: the first of ``TRANSFER_CANDIDATES`` that exists."""
TRANSFER_CANDIDATES = ("checkpoints/Pretrained/Pretrained", "checkpoints/pretrained_x2/pretrained_x2")
"""Where ``auto`` looks for the bicubic-pretrained weights, relative to the repository: the authors'
``Pretrained`` (published with the reference; a user drops it there), then the project's own."""
"""Precision (Keras policy name) -> dtype of the convolutions; weights, losses and updates stay float32."""

SON_GRIDS = ("exact", "reference")
"""Which part of a meta-test input its son is made from (``AdaptationConfig.son_grid``,
``mzsr_tf.meta_test.father_shape``): the input cropped to a multiple of the scale, so that direct subsampling
keeps every ``scale``-th pixel exactly (the default, ``DEFAULT_SON_GRID``), or the whole input, as the reference."""

INITIAL_LOSS_TASKS = ("all", "blur_free")
"""Of which meta-training tasks the query loss before adaptation is taken (``MetaTrainConfig.initial_loss_tasks``):
every task, or only those whose kernel is the identity (``identity_kernel_share``)."""

EIGENVALUE_SAMPLINGS = ("uniform", "log_uniform")
"""How the task-kernel variances are drawn over their ranges (``MetaTrainConfig.kernel_eigenvalue_sampling``):
uniformly, as the reference, or log-uniformly (``mzsr_tf.kernels.random_kernel_parameters``)."""

DEFAULT_SON_GRID = "exact"
"""The meta-test's son grid unless asked otherwise: the reference's stretched grid costs adaptation on inputs whose
sides are not multiples of the scale (README, "Differences from the reference")."""

STRATEGIES = ("default", "mirrored", "multiworker")
"""``tf.distribute`` strategies by name (``mzsr_tf.training.make_strategy``)."""

CONFIG_FILE = "config.json"
"""The resolved ``RunConfig`` of a run, beside its checkpoints."""


class ConfigError(ValueError):
    """A configuration value has the wrong type or lies outside its allowed range."""


# --------------------------------------------------------------------------- declared, checked fields

def _option(default: Any, doc: str, *, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, high_open: bool = False, choices: Optional[Tuple[str, ...]] = None):
    """A dataclass field with its documentation and allowed range.

    ``low``/``high`` bound numbers (and every element of a tuple of numbers), inclusive unless
    ``low_open``/``high_open``; ``choices`` lists the allowed strings.
    """
    return dataclasses.field(default=default, metadata={
        "doc": doc, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
        "choices": choices})


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (tuple, Tuple):
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(args[0], str(args[0]))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _has_type(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return any(_has_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin in (tuple, Tuple):
        return isinstance(value, tuple) and all(_has_type(v, args[0]) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _range_text(meta: Mapping[str, Any]) -> str:
    parts = []
    if meta["low"] is not None:
        parts.append(f"{'>' if meta['low_open'] else '>='} {meta['low']:g}")
    if meta["high"] is not None:
        parts.append(f"{'<' if meta['high_open'] else '<='} {meta['high']:g}")
    return " and ".join(parts)


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    if not math.isfinite(value):
        return False
    low, high = meta["low"], meta["high"]
    if low is not None and (value <= low if meta["low_open"] else value < low):
        return False
    return not (high is not None and (value >= high if meta["high_open"] else value > high))


def check_fields(config: Any) -> None:
    """Check every field of the dataclass instance ``config`` against its type and ``_option`` range.

    Raises ``ConfigError("<Class>.<field> must be ..., got ...")`` for the first field that fails.
    """
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value, hint, meta = getattr(config, f.name), hints[f.name], f.metadata
        where = f"{cls.__name__}.{f.name}"
        if not _has_type(value, hint):
            raise ConfigError(f"{where} must be {_type_name(hint)}, got {value!r}")
        if meta.get("choices") and value not in meta["choices"]:
            raise ConfigError(f"{where} must be one of {', '.join(meta['choices'])}, got {value!r}")
        if meta.get("low") is None and meta.get("high") is None:
            continue
        numbers = value if isinstance(value, tuple) else () if value is None else (value,)
        for number in numbers:
            if not _in_range(float(number), meta):
                raise ConfigError(f"{where} must be {_range_text(meta)} ({_type_name(hint)}), got {value!r}")


@dataclasses.dataclass(frozen=True)
class PiecewiseConstant:
    """A learning rate that is constant between step boundaries.

    Step ``i`` (0-based) uses ``values[k]`` where ``k`` is the number of ``boundaries`` that are
    ``<= i``.  ``PiecewiseConstant((1, 4), (2e-2, 1e-2, 5e-3))`` gives 2e-2 at step 0, 1e-2 at
    steps 1-3 and 5e-3 from step 4 on (the reference's schedule for ``--model 0``).
    """

    boundaries: Tuple[int, ...] = _option((), "steps at which the next value starts, increasing", low=1)
    values: Tuple[float, ...] = _option((0.01,), "the learning rates, one more than boundaries",
                                        low=0, low_open=True)

    def __post_init__(self):
        check_fields(self)
        if len(self.values) != len(self.boundaries) + 1:
            raise ConfigError(
                f"PiecewiseConstant needs one more value than boundaries, got "
                f"{len(self.boundaries)} boundaries and {len(self.values)} values")
        if list(self.boundaries) != sorted(self.boundaries):
            raise ConfigError(f"PiecewiseConstant boundaries must be increasing, got {self.boundaries}")

    def __call__(self, step: int) -> float:
        return self.values[sum(1 for b in self.boundaries if b <= step)]

    def rates(self, num_steps: int) -> Tuple[float, ...]:
        """The learning rates of steps ``0 .. num_steps - 1``."""
        return tuple(self(i) for i in range(num_steps))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The MZSR network: ``depth`` 3x3 convolutions of ``width`` channels and a global residual.

    The paper's network is ``width=64, depth=8`` (225,091 parameters).  Narrower networks exist
    only so tests can check meta-gradients against finite differences quickly.
    """

    width: int = _option(64, "channels of the hidden convolutions", low=1)
    depth: int = _option(8, "number of 3x3 convolutions (first and last included)", low=2)
    channels: int = _option(3, "image channels (3: RGB)", low=1)

    def __post_init__(self):
        if isinstance(self.width, int) and isinstance(self.channels, int) and min(self.width, self.channels) < 1:
            raise ConfigError(f"ModelConfig.width and .channels must be positive, got {self}")
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class AdaptationConfig:
    """Meta-test (the paper's Algorithm 2) for one image.

    ``inner_lr`` is the per-step learning-rate schedule of plain SGD on the L1 loss between the
    LR input ("HR father") and the network applied to the cubic upscale of its "son".
    ``precision`` sets the dtype of the convolutions: ``float32`` (the reference's numbers),
    ``mixed_bfloat16`` (about twice as fast on CPUs with AVX512-BF16/AMX and on recent GPUs) or
    ``mixed_float16`` (GPUs); weights, losses and SGD updates stay float32.
    """

    scale: float = _option(2.0, "super-resolution factor", low=1, low_open=True, high=16)
    ds_method: str = _option("direct", "subsampling of the son: direct or bicubic", choices=DS_METHODS)
    num_steps: int = _option(1, "adaptation steps (0: the meta-trained network as it is)", low=0)
    inner_lr: PiecewiseConstant = _option(PiecewiseConstant((1, 4), (2e-2, 1e-2, 5e-3)),
                                          "learning rate of each adaptation step")
    upscale_method: str = _option("cubic", "interpolation of the network's input", choices=("cubic",))
    noise_std: float = _option(0.0, "std of Gaussian noise added to the son (images in [0, 1])",
                               low=0, high=1)
    back_projection: bool = _option(False, "refine the output by iterative back-projection")
    back_projection_iters: int = _option(4, "back-projection iterations", low=0)
    precision: str = _option("float32", "dtype of the convolutions", choices=tuple(PRECISIONS))
    self_ensemble: bool = _option(False, "average the eight flips/rotations of the input, each adapted on its "
                                  "own (8x the time; beyond the paper, mzsr_tf.self_ensemble)")
    son_grid: str = _option(DEFAULT_SON_GRID, "the son of the input cropped at the bottom and right to a multiple "
                            "of the scale ('exact'; beyond the reference, mzsr_tf.meta_test.father_shape) or of the "
                            "whole input ('reference'; its direct-subsampling grid is stretched when a side is not a "
                            "multiple of the scale)", choices=SON_GRIDS)
    son_crops: int = _option(0, "fast mode (beyond the paper): each step on this many seeded random crops of the "
                             "son instead of the whole son, so a step costs the same at any size (0: the whole "
                             "son, the paper)", low=0)
    son_crop_size: int = _option(64, "side of the fast mode's crops, in input pixels", low=MIN_TILE)

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """Meta-transfer learning (the paper's Algorithm 1); defaults are the reference's ``config.py``.

    Loss weights: the meta-objective is ``mean_k(w_k * L_query_k)`` over the ``inner_steps`` query
    losses, with ``w`` from ``mzsr_tf.inner.loss_weights(step)`` (MAML++ multi-step loss, annealed
    over ``loss_weight_anneal_steps``).  The reference never advances its ``global_step``, so its
    weights stay at ``1 / inner_steps`` unless resumed; ``freeze_loss_weights=True`` reproduces that.
    ``fixed_loss_weights`` (one per inner step) replaces the schedule by constant weights, e.g.
    ``(0.6, 0.1, 0.1, 0.1, 0.1)`` to favour the result after one step (MZSR (1)).
    ``initial_loss_weight`` (default 0, the reference) adds the query loss before adaptation with
    that weight (``+ w_0 · L_0 / inner_steps``), holding the initialisation itself near a usable model;
    ``initial_loss_tasks`` says of which tasks: ``all`` (default) or ``blur_free`` (only the tasks whose
    kernel is the identity, see below: the initialisation keeps serving clean inputs while the blurred
    tasks leave it free to become a starting point for adaptation).

    Task kernels: anisotropic Gaussians with eigenvalues (variances) ``l1`` in ``[kernel_min_eigenvalue,
    scale * kernel_k1_per_scale)`` and ``l2`` in ``[kernel_min_eigenvalue, l1)``; the reference's lower
    bound is 1, so kernels as sharp as g^d_0.2 (variance 0.2) are never seen in training unless it is lowered.
    ``isotropic_kernel_share`` (default 0, the reference) of the Gaussians are isotropic instead, of variance
    ``l1`` (a mix of isotropic and anisotropic kernels; the paper's g^d_2.0 and g^d_0.2 are isotropic).
    ``kernel_eigenvalue_sampling`` ``log_uniform`` (default ``uniform``, the reference) draws both eigenvalues
    log-uniformly over the same ranges (``mzsr_tf.kernels.random_kernel_parameters``).
    ``identity_kernel_share`` (default 0, the reference) of the tasks instead use the identity kernel (no blur):
    with ``ds_method='bicubic'`` their LR is MATLAB's ``imresize(HR, 1 / scale)``, the paper's clean "bicubic"
    scenario (a Gaussian, however narrow, still blurs a little).
    """

    patch_size: int = _option(64, "side of the HR patches of a task (random crops of larger records)", low=2)
    channels: int = _option(3, "image channels", low=1)
    scale_list: Tuple[float, ...] = _option((2.0,), "scales a task's factor is drawn from (uniformly over the entries: "
                                            "one listed k times is drawn k times as often)", low=1,
                                            low_open=True, high=16)
    ds_method: str = _option("direct", "subsampling of the task LR: direct or bicubic", choices=DS_METHODS)
    meta_iter: int = _option(100000, "train until this meta-iteration", low=1)
    meta_batch_size: int = _option(5, "tasks per meta-iteration", low=1)
    task_batch_size: int = _option(8, "images in a task's support set (and in its query set)", low=1)
    meta_lr: float = _option(1e-4, "Adam's learning rate on the meta-objective", low=0, low_open=True, high=1)
    inner_lr: float = _option(1e-2, "inner SGD learning rate (every step, unless inner_lr_schedule)",
                              low=0, low_open=True, high=10)
    inner_lr_schedule: Optional[PiecewiseConstant] = _option(None, "per-inner-step learning rates")
    inner_steps: int = _option(5, "inner SGD steps per task", low=1, high=100)
    second_order_from_step: int = _option(0, "first-order meta-gradients before this iteration", low=0)
    loss_weight_anneal_steps: float = _option(10000 / 3, "iterations over which the query-loss weights "
                                              "anneal towards the last step", low=0, low_open=True)
    loss_weight_floor: float = _option(0.03, "lowest annealed weight of a non-final step", low=0, high=1)
    freeze_loss_weights: bool = _option(False, "keep the query-loss weights at 1/inner_steps (the reference)")
    fixed_loss_weights: Optional[Tuple[float, ...]] = _option(
        None, "constant query-loss weights, one per inner step", low=0)
    initial_loss_weight: float = _option(0.0, "weight of the query loss before adaptation", low=0)
    initial_loss_tasks: str = _option("all", "tasks the loss before adaptation is taken of: all, or "
                                      "blur_free (identity-kernel tasks only)", choices=INITIAL_LOSS_TASKS)
    kernel_size: int = _option(15, "side of the task kernels", low=1, high=99)
    kernel_k1_per_scale: float = _option(2.5, "largest task-kernel variance per unit of scale",
                                         low=0, low_open=True)
    kernel_min_eigenvalue: float = _option(1.0, "smallest task-kernel variance (range checked below)")
    isotropic_kernel_share: float = _option(0.0, "share of task Gaussians that are isotropic (l2 = l1)",
                                            low=0, high=1)
    kernel_eigenvalue_sampling: str = _option("uniform", "how the task-kernel variances are drawn over their "
                                              "ranges: uniform or log_uniform", choices=EIGENVALUE_SAMPLINGS)
    identity_kernel_share: float = _option(0.0, "share of tasks whose kernel is the identity (no blur)",
                                           low=0, high=1)
    noise_std: float = _option(0.0, "std of noise added to the task LR", low=0, high=1)
    shuffle_buffer: int = _option(1000, "patches in the shuffle buffer", low=1)
    print_every: int = _option(100, "log and summarise every N iterations", low=1)
    save_every: int = _option(2500, "checkpoint every N iterations", low=1)
    max_to_keep: int = _option(20, "checkpoints kept", low=1)
    transfer_checkpoint: Optional[str] = _option(TRANSFER_AUTO, "weights a new run starts from ('auto': "
                                                 "the authors' Pretrained in checkpoints/Pretrained/ if there, "
                                                 "else the project's checkpoints/pretrained_x2; null: random)")
    tfrecord_path: str = _option("dataset/records/train_SR_MZSR.tfrecord", "training records")
    checkpoint_dir: str = _option("runs/meta", "runs go to CHECKPOINT_DIR/Model<trial>")
    seed: int = _option(0, "seed of the weights (no transfer), the task stream and the crops")

    def __post_init__(self):
        check_fields(self)
        if not self.scale_list:
            raise ConfigError("MetaTrainConfig.scale_list must hold at least one scale")
        smallest_k1 = min(self.scale_list) * self.kernel_k1_per_scale
        if not 0 < self.kernel_min_eigenvalue <= smallest_k1:
            raise ConfigError(f"kernel_min_eigenvalue must be in (0, min(scale_list) * kernel_k1_per_scale = "
                              f"{smallest_k1:g}], got {self.kernel_min_eigenvalue!r}")
        if self.identity_kernel_share > 0 and self.kernel_size % 2 == 0:
            raise ConfigError(f"identity_kernel_share needs an odd kernel_size (a centre pixel), got "
                              f"{self.kernel_size}")
        if self.initial_loss_tasks == "blur_free" and not (self.identity_kernel_share > 0
                                                           and self.initial_loss_weight > 0):
            raise ConfigError(f"initial_loss_tasks 'blur_free' needs identity_kernel_share > 0 and "
                              f"initial_loss_weight > 0, got {self.identity_kernel_share!r} and "
                              f"{self.initial_loss_weight!r}")
        if self.fixed_loss_weights is not None and len(self.fixed_loss_weights) != self.inner_steps:
            raise ConfigError(f"fixed_loss_weights needs one weight per inner step ({self.inner_steps}), "
                              f"got {len(self.fixed_loss_weights)}")
        if self.patch_size < 2 * max(self.scale_list):
            raise ConfigError(f"MetaTrainConfig.patch_size must be at least 2 x the largest scale "
                              f"({2 * max(self.scale_list):g}), got {self.patch_size}")

    def inner_rates(self) -> Tuple[float, ...]:
        """The learning rate of each of the ``inner_steps`` inner SGD steps."""
        if self.inner_lr_schedule is None:
            return (self.inner_lr,) * self.inner_steps
        return self.inner_lr_schedule.rates(self.inner_steps)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Large-scale "bicubic" pretraining (the reference's ``Large-Scale_Training``)."""

    patch_size: int = _option(96, "side of the HR patches", low=2)
    scale: int = _option(2, "integer factor between HR and LR patches", low=2, high=16)
    channels: int = _option(3, "image channels", low=1)
    batch_size: int = _option(32, "patches per step", low=1)
    lr: float = _option(4e-4, "Adam's initial learning rate", low=0, low_open=True, high=1)
    lr_decay_steps: int = _option(100000, "steps between learning-rate decays", low=1)
    lr_decay_rate: float = _option(0.5, "factor of each decay", low=0, low_open=True, high=1)
    min_lr: float = _option(1e-4, "floor of the decayed learning rate", low=0, high=1)
    max_steps: int = _option(1000000, "train until this step", low=1)
    shuffle_buffer: int = _option(1000, "pairs in the shuffle buffer", low=1)
    print_every: int = _option(100, "log and summarise every N steps", low=1)
    save_every: int = _option(5000, "checkpoint every N steps", low=1)
    max_to_keep: int = _option(20, "checkpoints kept", low=1)
    tfrecord_path: str = _option("dataset/records/train_SR_X2.tfrecord", "pretraining records")
    checkpoint_dir: str = _option("runs/pretrain", "runs go to CHECKPOINT_DIR/Model<trial>")
    seed: int = _option(0, "seed of the weights and the data stream")

    def __post_init__(self):
        check_fields(self)
        if self.min_lr > self.lr:
            raise ConfigError(f"PretrainConfig.min_lr ({self.min_lr:g}) must not exceed lr ({self.lr:g})")
        if self.patch_size % self.scale:
            raise ConfigError(f"PretrainConfig: patch size {self.patch_size} is not a multiple of the "
                              f"scale {self.scale}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run computes (does not change what is learnt, up to float rounding)."""

    precision: str = _option("float32", "dtype of the convolutions: float32 reproduces the reference",
                             choices=tuple(PRECISIONS))
    strategy: str = _option("default", "tf.distribute strategy: tasks/batches split across replicas",
                            choices=STRATEGIES)

    def __post_init__(self):
        check_fields(self)


StageConfig = Union[MetaTrainConfig, PretrainConfig]
STAGES = {"MetaTrainConfig": MetaTrainConfig, "PretrainConfig": PretrainConfig}
"""The training stages a ``RunConfig`` can hold, by class name (as saved in ``config.json``)."""

RUN_LENGTH_FIELDS = frozenset({"meta_iter", "max_steps", "print_every", "save_every", "max_to_keep",
                               "checkpoint_dir", "tfrecord_path", "transfer_checkpoint", "strategy"})
"""Stage and runtime fields a resumed run may change: how long it runs, how often it logs and saves,
where its files are, and how it is distributed (``runtime.strategy``: the same updates up to float
rounding, so a multi-worker run that lost a worker can go on in one process).  Any other
difference (``runtime.precision`` included) means another run (``RunConfig.resume_differences``)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run, the way TF Model Garden's ``ExperimentConfig`` holds one experiment.

    Attributes:
      model: the network.
      train: the stage's hyper-parameters (``MetaTrainConfig`` or ``PretrainConfig``).
      runtime: precision and distribution strategy.
      preset: the preset whose defaults the stage started from (``direct_x4``), or ``None``.
    """

    model: ModelConfig = _option(ModelConfig(), "the network")
    train: StageConfig = _option(MetaTrainConfig(), "the training stage's hyper-parameters")
    runtime: RuntimeConfig = _option(RuntimeConfig(), "precision and strategy")
    preset: Optional[str] = _option(None, "the preset the defaults came from")

    def __post_init__(self):
        check_fields(self)

    def resume_differences(self, saved: "RunConfig") -> Dict[str, Tuple[Any, Any]]:
        """The settings in which this configuration differs from a run's ``saved`` one and that a
        resumed run may not change: ``{'train.patch_size': (saved, requested), ...}``."""
        differences = {}
        mine, theirs = to_dict(self), to_dict(saved)
        if type(self.train) is not type(saved.train):
            return {"train": (type(saved.train).__name__, type(self.train).__name__)}
        for part in ("model", "train", "runtime"):
            for key, value in mine[part].items():
                if part in ("train", "runtime") and key in RUN_LENGTH_FIELDS:
                    continue
                if theirs[part].get(key) != value:
                    differences[f"{part}.{key}"] = (theirs[part].get(key), value)
        return differences


@dataclasses.dataclass(frozen=True)
class Preset:
    """One of the four models the authors published.

    ``published_checkpoint`` is where a user drops the authors' files (same names as their
    ``Model/`` folder); ``project_checkpoint`` is a model this project trained itself, if any.
    """

    name: str
    reference_name: str
    model_index: int
    scale: float
    ds_method: str
    inner_lr: PiecewiseConstant
    meta_batch_size: int
    task_batch_size: int
    scale_list: Tuple[float, ...]
    project_checkpoint: Optional[str] = None

    @property
    def published_checkpoint(self) -> str:
        """Where the authors' files of this model go: ``checkpoints/Model/<reference_name>``."""
        return f"{PUBLISHED_MODEL_DIR}/{self.reference_name}"

    def adaptation_config(self, **overrides: Any) -> AdaptationConfig:
        """The meta-test configuration of this preset, with ``overrides`` applied."""
        base = AdaptationConfig(scale=self.scale, ds_method=self.ds_method, inner_lr=self.inner_lr)
        return dataclasses.replace(base, **overrides)

    def meta_train_config(self, **overrides: Any) -> MetaTrainConfig:
        """The meta-training configuration the authors used for this preset, with ``overrides``."""
        base = MetaTrainConfig(scale_list=self.scale_list, ds_method=self.ds_method,
                               meta_batch_size=self.meta_batch_size,
                               task_batch_size=self.task_batch_size)
        return dataclasses.replace(base, **overrides)


PRESETS: Dict[str, Preset] = {
    "direct_x2": Preset(
        name="direct_x2", reference_name="Directx2", model_index=0, scale=2.0, ds_method="direct",
        inner_lr=PiecewiseConstant((1, 4), (2e-2, 1e-2, 5e-3)),
        meta_batch_size=5, task_batch_size=4, scale_list=(2.0,),
        project_checkpoint="checkpoints/direct_x2"),
    "multiscale": Preset(
        name="multiscale", reference_name="Multi-scale", model_index=1, scale=2.0, ds_method="direct",
        inner_lr=PiecewiseConstant((3,), (1e-2, 5e-3)),
        meta_batch_size=5, task_batch_size=8,
        scale_list=tuple(round(2.0 + 0.2 * i, 1) for i in range(11)),
        project_checkpoint="checkpoints/multi_scale/multi_scale"),
    "bicubic_x2": Preset(
        name="bicubic_x2", reference_name="Bicubicx2", model_index=2, scale=2.0, ds_method="bicubic",
        inner_lr=PiecewiseConstant((3,), (1e-2, 1e-3)),
        meta_batch_size=4, task_batch_size=8, scale_list=(2.0,),
        project_checkpoint="checkpoints/bicubic_x2/bicubic_x2"),
    "direct_x4": Preset(
        name="direct_x4", reference_name="Directx4", model_index=3, scale=4.0, ds_method="direct",
        inner_lr=PiecewiseConstant((1, 5), (1e-2, 5e-3, 1e-3)),
        meta_batch_size=5, task_batch_size=8, scale_list=(4.0,),
        project_checkpoint="checkpoints/direct_x4/direct_x4"),
}


def preset_for_model(model_index: int) -> Preset:
    """The preset behind the reference's ``--model`` number (0..3)."""
    for preset in PRESETS.values():
        if preset.model_index == model_index:
            return preset
    raise ConfigError(f"--model must be 0, 1, 2 or 3 (got {model_index}): "
                     + ", ".join(f"{p.model_index}={p.name}" for p in PRESETS.values()))


def get_preset(name: str) -> Preset:
    """A preset by name (``direct_x2``, ``multiscale``, ``bicubic_x2``, ``direct_x4``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------- (de)serialisation

def to_dict(config: Any) -> Dict[str, Any]:
    """A JSON-ready dict of a config dataclass (nested dataclasses become dicts, tuples lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _coerce(field_type: Any, value: Any, where: str) -> Any:
    """``value`` as read from JSON, turned into the field's type where JSON cannot hold it (tuples,
    a ``PiecewiseConstant``); type and range checks are left to the dataclass."""
    if isinstance(value, Mapping):
        for candidate in typing.get_args(field_type) or (field_type,):
            if dataclasses.is_dataclass(candidate):
                return from_dict(candidate, value, where)
    if isinstance(value, list):
        return tuple(value)
    return value


def override(config: Any, values: Mapping[str, Any]) -> Any:
    """A copy of ``config`` with ``values`` replaced; unknown keys and bad values are a
    ``ConfigError`` naming them.  Nested configs (a ``RunConfig``'s parts) take dicts of their own
    options, applied over their current values."""
    cls = type(config)
    if not isinstance(values, Mapping):
        raise ConfigError(f"expected an object of {cls.__name__} options, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(fields))}")
    changes = {}
    for key, value in values.items():
        current = getattr(config, key)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            changes[key] = override(current, value)
        else:
            changes[key] = _coerce(hints[key], value, f"{cls.__name__}.{key}")
    try:
        return dataclasses.replace(config, **changes)
    except TypeError as error:  # e.g. a comparison of a string with a number in a cross-field check
        raise ConfigError(f"{cls.__name__}: {error}") from None


def from_dict(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Build ``cls`` from its defaults overridden by ``values`` (as written by ``to_dict``)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected an object, got {type(values).__name__}")
    return override(cls(), values)


def save_config(path: str, config: Any) -> None:
    """Write ``config`` (any config dataclass, a ``RunConfig`` included) as JSON with its class name
    to ``path``, atomically (a temporary file renamed), creating folders."""
    data = {"class": type(config).__name__, "values": to_dict(config)}
    if isinstance(config, RunConfig):
        data["train_class"] = type(config.train).__name__
    write_json(path, data)


def read_json_object(path: str, what: str = "", error: type = None,
                     missing_ok: bool = False) -> Optional[Dict[str, Any]]:
    """The JSON object in the file ``path``: the project's one JSON reader.

    An ``error`` (default ``ConfigError``) naming the file when it cannot be read or holds something other
    than an object (``what`` says what the object should hold, e.g. ``"MetaTrainConfig options"``);
    ``missing_ok``: ``None`` when there is no such file.
    """
    error = error or ConfigError
    if missing_ok and not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as problem:
        raise error(f"{path}: cannot read a JSON object{' of ' + what if what else ''} ({problem})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object{' of ' + what if what else ''}, got {type(data).__name__}")
    return data


def _run_config_from_json(data: Mapping[str, Any], path: str,
                          run_info: Optional[Mapping[str, Any]] = None) -> RunConfig:
    if data.get("class") == "RunConfig":
        values = dict(data["values"])
        stage_name = data.get("train_class", "MetaTrainConfig")
        if stage_name not in STAGES:
            raise ConfigError(f"{path}: unknown training stage {stage_name!r}")
        train = from_dict(STAGES[stage_name], values.pop("train", {}), f"{path}: train")
        return override(RunConfig(train=train), values)
    # The older layout: the stage's config alone, the model and precision in run.json.
    stage_name = data.get("class", "MetaTrainConfig")
    if stage_name not in STAGES:
        raise ConfigError(f"{path}: unknown configuration class {stage_name!r}")
    train = from_dict(STAGES[stage_name], data.get("values", data), path)
    info = run_info or {}
    preset = None
    if "preset_model" in info:
        preset = preset_for_model(int(info["preset_model"])).name
    return RunConfig(model=from_dict(ModelConfig, info.get("model", {}), f"{path}: model"), train=train,
                     runtime=RuntimeConfig(precision=info.get("precision", "float32")), preset=preset)


def load_config(path: str, cls: type) -> Any:
    """Read a JSON file written by ``save_config`` (or a plain dict of overrides) as ``cls``.

    Public API for reading a saved configuration or a recipe file as one class (training itself
    reads run folders with ``load_run_config``).

    A saved ``RunConfig`` read as a stage class (``MetaTrainConfig``/``PretrainConfig``) gives its
    ``train`` part.
    """
    data = read_json_object(path)
    if cls is RunConfig or data.get("class") == "RunConfig":
        run = _run_config_from_json(data, path)
        return run if cls is RunConfig else run.train
    return from_dict(cls, data.get("values", data), path)


def save_run_config(directory: str, run: RunConfig) -> str:
    """Write ``run`` to ``directory/config.json`` (atomically); return the path."""
    path = os.path.join(directory, CONFIG_FILE)
    save_config(path, run)
    return path


def load_run_config(directory: str) -> Optional[RunConfig]:
    """The ``RunConfig`` saved in a run folder, or ``None`` if it holds none.

    Reads both layouts: ``config.json`` holding a ``RunConfig``, and the older ``config.json`` holding
    the stage's config with ``run.json`` beside it (``model``, ``precision``, ``preset_model``).
    """
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    data = read_json_object(path)
    run_info_path = os.path.join(directory, "run.json")
    run_info = read_json_object(run_info_path) if os.path.isfile(run_info_path) else None
    return _run_config_from_json(data, path, run_info)
