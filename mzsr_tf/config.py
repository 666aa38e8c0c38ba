"""Every hyper-parameter of mzsr-tf, as frozen dataclasses, and the four published presets.

This module is the single source of truth for defaults: the values below are the paper's and the
reference implementation's (github ``JWSoh/MZSR``, ``config.py``, ``test.py``, ``train.py``).
Command-line flags and JSON files only override them (``override``), and the resolved configuration
is saved beside every checkpoint (``save_config``) so a run can always be reproduced.

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
import os
from typing import Any, Dict, Mapping, Optional, Tuple

DS_METHODS = ("direct", "bicubic")
PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
"""Precision (Keras policy name) -> dtype of the convolutions; weights, losses and updates stay float32."""


@dataclasses.dataclass(frozen=True)
class PiecewiseConstant:
    """A learning rate that is constant between step boundaries.

    Step ``i`` (0-based) uses ``values[k]`` where ``k`` is the number of ``boundaries`` that are
    ``<= i``.  ``PiecewiseConstant((1, 4), (2e-2, 1e-2, 5e-3))`` gives 2e-2 at step 0, 1e-2 at
    steps 1-3 and 5e-3 from step 4 on (the reference's schedule for ``--model 0``).
    """

    boundaries: Tuple[int, ...]
    values: Tuple[float, ...]

    def __post_init__(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstant needs one more value than boundaries, got "
                f"{len(self.boundaries)} boundaries and {len(self.values)} values")
        if list(self.boundaries) != sorted(self.boundaries):
            raise ValueError(f"PiecewiseConstant boundaries must be increasing, got {self.boundaries}")

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

    width: int = 64
    depth: int = 8
    channels: int = 3


@dataclasses.dataclass(frozen=True)
class AdaptationConfig:
    """Meta-test (the paper's Algorithm 2) for one image.

    ``inner_lr`` is the per-step learning-rate schedule of plain SGD on the L1 loss between the
    LR input ("HR father") and the network applied to the cubic upscale of its "son".
    ``precision`` sets the dtype of the convolutions: ``float32`` (the reference's numbers),
    ``mixed_bfloat16`` (about twice as fast on CPUs with AVX512-BF16/AMX and on recent GPUs) or
    ``mixed_float16`` (GPUs); weights, losses and SGD updates stay float32.
    """

    scale: float = 2.0
    ds_method: str = "direct"
    num_steps: int = 1
    inner_lr: PiecewiseConstant = PiecewiseConstant((1, 4), (2e-2, 1e-2, 5e-3))
    upscale_method: str = "cubic"
    noise_std: float = 0.0
    back_projection: bool = False
    back_projection_iters: int = 4
    precision: str = "float32"

    def __post_init__(self):
        if self.ds_method not in DS_METHODS:
            raise ValueError(f"ds_method must be one of {DS_METHODS}, got {self.ds_method!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.num_steps < 0:
            raise ValueError(f"num_steps must be >= 0, got {self.num_steps}")
        if self.scale <= 1:
            raise ValueError(f"scale must be > 1, got {self.scale}")


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
    that weight (``+ w_0 · L_0 / inner_steps``), holding the initialisation itself near a usable model.

    Task kernels: anisotropic Gaussians with eigenvalues (variances) ``l1`` in ``[kernel_min_eigenvalue,
    scale * kernel_k1_per_scale)`` and ``l2`` in ``[kernel_min_eigenvalue, l1)``; the reference's lower
    bound is 1, so kernels as sharp as g^d_0.2 (variance 0.2) are never seen in training unless it is lowered.
    """

    patch_size: int = 64
    channels: int = 3
    scale_list: Tuple[float, ...] = (2.0,)
    ds_method: str = "direct"
    meta_iter: int = 100000
    meta_batch_size: int = 5
    task_batch_size: int = 8
    meta_lr: float = 1e-4
    inner_lr: float = 1e-2
    inner_lr_schedule: Optional[PiecewiseConstant] = None
    inner_steps: int = 5
    second_order_from_step: int = 0
    loss_weight_anneal_steps: float = 10000 / 3
    loss_weight_floor: float = 0.03
    freeze_loss_weights: bool = False
    fixed_loss_weights: Optional[Tuple[float, ...]] = None
    initial_loss_weight: float = 0.0
    kernel_size: int = 15
    kernel_k1_per_scale: float = 2.5
    kernel_min_eigenvalue: float = 1.0
    noise_std: float = 0.0
    shuffle_buffer: int = 1000
    print_every: int = 100
    save_every: int = 2500
    max_to_keep: int = 20
    transfer_checkpoint: Optional[str] = "../shared/mzsr_reference/Pretrained/Pretrained"
    tfrecord_path: str = "dataset/records/train_SR_MZSR.tfrecord"
    checkpoint_dir: str = "runs/meta"
    seed: int = 0

    def __post_init__(self):
        if self.ds_method not in DS_METHODS:
            raise ValueError(f"ds_method must be one of {DS_METHODS}, got {self.ds_method!r}")
        smallest_k1 = min(self.scale_list) * self.kernel_k1_per_scale
        if not 0 < self.kernel_min_eigenvalue <= smallest_k1:
            raise ValueError(f"kernel_min_eigenvalue must be in (0, min(scale_list) * kernel_k1_per_scale = "
                             f"{smallest_k1:g}], got {self.kernel_min_eigenvalue!r}")
        if self.fixed_loss_weights is not None and len(self.fixed_loss_weights) != self.inner_steps:
            raise ValueError(f"fixed_loss_weights needs one weight per inner step ({self.inner_steps}), "
                             f"got {len(self.fixed_loss_weights)}")

    def inner_rates(self) -> Tuple[float, ...]:
        """The learning rate of each of the ``inner_steps`` inner SGD steps."""
        if self.inner_lr_schedule is None:
            return (self.inner_lr,) * self.inner_steps
        return self.inner_lr_schedule.rates(self.inner_steps)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Large-scale "bicubic" pretraining (the reference's ``Large-Scale_Training``)."""

    patch_size: int = 96
    scale: int = 2
    channels: int = 3
    batch_size: int = 32
    lr: float = 4e-4
    lr_decay_steps: int = 100000
    lr_decay_rate: float = 0.5
    min_lr: float = 1e-4
    max_steps: int = 1000000
    shuffle_buffer: int = 1000
    print_every: int = 100
    save_every: int = 5000
    max_to_keep: int = 20
    tfrecord_path: str = "dataset/records/train_SR_X2.tfrecord"
    checkpoint_dir: str = "runs/pretrain"
    seed: int = 0


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
    published_checkpoint: str
    project_checkpoint: Optional[str] = None

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
        published_checkpoint="checkpoints/Model/Directx2",
        project_checkpoint="checkpoints/direct_x2"),
    "multiscale": Preset(
        name="multiscale", reference_name="Multi-scale", model_index=1, scale=2.0, ds_method="direct",
        inner_lr=PiecewiseConstant((3,), (1e-2, 5e-3)),
        meta_batch_size=5, task_batch_size=8,
        scale_list=tuple(round(2.0 + 0.2 * i, 1) for i in range(11)),
        published_checkpoint="checkpoints/Model/Multi-scale"),
    "bicubic_x2": Preset(
        name="bicubic_x2", reference_name="Bicubicx2", model_index=2, scale=2.0, ds_method="bicubic",
        inner_lr=PiecewiseConstant((3,), (1e-2, 1e-3)),
        meta_batch_size=4, task_batch_size=8, scale_list=(2.0,),
        published_checkpoint="checkpoints/Model/Bicubicx2"),
    "direct_x4": Preset(
        name="direct_x4", reference_name="Directx4", model_index=3, scale=4.0, ds_method="direct",
        inner_lr=PiecewiseConstant((1, 5), (1e-2, 5e-3, 1e-3)),
        meta_batch_size=5, task_batch_size=8, scale_list=(4.0,),
        published_checkpoint="checkpoints/Model/Directx4"),
}


def preset_for_model(model_index: int) -> Preset:
    """The preset behind the reference's ``--model`` number (0..3)."""
    for preset in PRESETS.values():
        if preset.model_index == model_index:
            return preset
    raise ValueError(f"--model must be 0, 1, 2 or 3 (got {model_index}): "
                     + ", ".join(f"{p.model_index}={p.name}" for p in PRESETS.values()))


def get_preset(name: str) -> Preset:
    """A preset by name (``direct_x2``, ``multiscale``, ``bicubic_x2``, ``direct_x4``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------- (de)serialisation

def to_dict(config: Any) -> Dict[str, Any]:
    """A JSON-ready dict of a config dataclass (nested dataclasses become dicts, tuples lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _coerce(field_type: Any, value: Any) -> Any:
    if "PiecewiseConstant" in str(field_type) and isinstance(value, Mapping):
        return PiecewiseConstant(tuple(value["boundaries"]), tuple(value["values"]))
    if isinstance(value, list):
        return tuple(value)
    return value


def override(config: Any, values: Mapping[str, Any]) -> Any:
    """A copy of ``config`` with ``values`` replaced; unknown keys are an error naming them."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {type(config).__name__} option(s): {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(fields))}")
    return dataclasses.replace(
        config, **{k: _coerce(fields[k].type, v) for k, v in values.items()})


def from_dict(cls: type, values: Mapping[str, Any]) -> Any:
    """Build ``cls`` from defaults overridden by ``values`` (as written by ``to_dict``)."""
    return override(cls(), values) if _all_defaults(cls) else cls(**{
        f.name: _coerce(f.type, values[f.name]) for f in dataclasses.fields(cls) if f.name in values})


def _all_defaults(cls: type) -> bool:
    return all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(cls))


def save_config(path: str, config: Any) -> None:
    """Write ``config`` as JSON (with its class name) to ``path``, creating folders."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"class": type(config).__name__, "values": to_dict(config)}, f, indent=2)


def load_config(path: str, cls: type) -> Any:
    """Read a JSON file written by ``save_config`` (or a plain dict of overrides) as ``cls``."""
    with open(path) as f:
        data = json.load(f)
    values = data.get("values", data)
    return from_dict(cls, values)
