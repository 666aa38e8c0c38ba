"""The loop machinery shared by pretraining and meta-training.

Both stages are "one ``tf.function`` step per batch" plus the same bookkeeping, which lives here:

- ``make_strategy``: ``tf.distribute`` strategies by name (``default``, ``mirrored``, ``multiworker``).
- ``RunState``: the run folder (``<checkpoint_dir>/Model<trial>``, the reference's layout) with its
  bounded ``tf.train.CheckpointManager``, the resolved config saved as ``config.json`` beside the
  checkpoints, TensorBoard logs in ``logs/``, and resume with the reference's ``--step`` check.
- ``SignalGuard``: SIGINT/SIGTERM set a flag; the loop finishes the step in flight, saves, and stops
  cleanly.  A second signal interrupts at once (no save).
- ``run_loop``: steps until ``max_steps``; logs every ``print_every`` (losses, seconds, steps/s, the
  share of wall time spent waiting for data), saves every ``save_every``.  A NaN or Inf in any loss
  stops with ``NonFiniteLossError`` and saves nothing, so the last good checkpoint is what remains.

Steps are counted by an int64 ``tf.Variable`` that the training step itself advances; checkpoints
are numbered by it (``ckpt-<step>``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from mzsr_tf.checkpoints import make_manager, restore_latest, save_checkpoint
from mzsr_tf.config import load_config, override, save_config, to_dict

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multiworker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
CONFIG_FILE = "config.json"
LOG_DIR = "logs"

Metrics = Dict[str, np.ndarray]
LoopResultLike = Any  # a LoopResult (defined below)


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or Inf; nothing was saved after it."""


class ResumeError(ValueError):
    """The requested ``--step`` does not match the checkpoints of the run folder."""


# --------------------------------------------------------------------------- strategies, precision

def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name.

    - ``default``: no distribution (the current default strategy: one device).
    - ``mirrored``: ``MirroredStrategy`` over all local GPUs (or the CPU when there is none, or the
      logical CPUs configured with ``tf.config.set_logical_device_configuration``).
    - ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        devices = [d.name for d in gpus] if gpus else [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def compute_dtype(precision: str) -> tf.DType:
    """The convolutions' dtype: float16 / bfloat16 for the mixed precisions (variables, losses and
    updates stay float32), else float32."""
    return {"float32": tf.float32, "mixed_float16": tf.float16,
            "mixed_bfloat16": tf.bfloat16}[check_precision(precision)]


def needs_loss_scaling(precision: str) -> bool:
    """float16's narrow exponent range needs loss scaling; bfloat16 has float32's range."""
    return check_precision(precision) == "mixed_float16"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the real checkpoints and logs (always, without multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def replica_count(strategy: tf.distribute.Strategy, global_batch: int, what: str) -> int:
    """``global_batch // replicas``, or a clear error when the batch does not split evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"{what} = {global_batch} cannot be split evenly across "
                         f"{replicas} replicas; choose a multiple of {replicas}")
    return global_batch // replicas


def split_across_replicas(strategy: tf.distribute.Strategy, batch: Any) -> Any:
    """Give each replica its consecutive slice (along axis 0) of a nest of global-batch tensors.

    Values that are already distributed (from ``experimental_distribute_dataset``) pass unchanged;
    without distribution the batch is returned as is.
    """
    first = tf.nest.flatten(batch)[0]
    if strategy.num_replicas_in_sync == 1 or isinstance(first, tf.distribute.DistributedValues):
        return batch
    size = replica_count(strategy, int(first.shape[0]), "the batch size")

    def local(context: tf.distribute.ValueContext):
        start = context.replica_id_in_sync_group * size
        return tf.nest.map_structure(lambda x: x[start:start + size], batch)

    return strategy.experimental_distribute_values_from_function(local)


# --------------------------------------------------------------------------- signals

class SignalGuard:
    """Within ``with SignalGuard() as guard:``, SIGINT and SIGTERM only set ``guard.requested``.

    The loop checks ``guard.requested`` (the signal's name, or ``None``) between steps, saves and
    stops.  A second signal raises ``KeyboardInterrupt`` at once.  Previous handlers are restored on
    exit.  Outside the main thread (where Python cannot install handlers) the guard does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: Optional[str] = None
        self._previous: Dict[int, Any] = {}

    def request_stop(self, signum: int, frame=None) -> None:
        """The signal handler (also callable directly, e.g. by tests)."""
        name = signal.Signals(signum).name
        if self.requested is not None:
            raise KeyboardInterrupt(f"second {name}: stopping without saving")
        self.requested = name
        log.info("[*] %s received: finishing the current step, then saving and stopping "
                 "(send it again to stop at once without saving)", name)

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self.request_stop)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# --------------------------------------------------------------------------- run folder

def run_directory(checkpoint_dir: str, trial: int) -> str:
    """``<checkpoint_dir>/Model<trial>``: the reference's layout (``SR/Model0``)."""
    return os.path.join(checkpoint_dir, f"Model{trial}")


class RunState:
    """A run folder: checkpoints of ``trackables`` numbered by ``step``, config, TensorBoard logs.

    Args:
      directory: the run folder (created).  Non-chief workers of a multi-worker run write to a
        temporary folder instead, so only the chief's files are kept.
      config: the resolved configuration dataclass, written to ``directory/config.json``.
      step: the int64 step variable the training step advances.
      max_to_keep: the number of checkpoints kept.
      trackables: what a checkpoint holds, e.g. ``model=``, ``optimizer=``, ``data=`` (an iterator).
      chief: whether this worker is the chief.
    """

    def __init__(self, directory: str, config: Any, step: tf.Variable, max_to_keep: int,
                 chief: bool = True, **trackables):
        self.directory = directory if chief else tempfile.mkdtemp(prefix="mzsr_worker_")
        os.makedirs(self.directory, exist_ok=True)
        self.config = config
        self.step = step
        self.manager = make_manager(self.directory, max_to_keep, step=step, **trackables)
        self.last_saved: Optional[str] = self.manager.latest_checkpoint
        self.writer = tf.summary.create_file_writer(os.path.join(self.directory, LOG_DIR))

    @property
    def current_step(self) -> int:
        return int(self.step.numpy())

    def resume(self, requested_step: Optional[int]) -> Optional[str]:
        """Restore the latest checkpoint of the folder, if any; return its prefix or ``None``.

        ``requested_step`` is the reference's ``--step``: ``None`` resumes whatever is there; a
        number must equal the latest checkpoint's step (``0`` with no checkpoint means a fresh
        start), otherwise ``ResumeError`` says what the folder holds.
        """
        latest = self.manager.latest_checkpoint
        if latest is None:
            if requested_step:
                raise ResumeError(f"--step {requested_step}: {self.directory} holds no checkpoint "
                                  f"to resume (use --step 0 to start a new run)")
            return None
        restored = restore_latest(self.manager)
        if requested_step is not None and requested_step != self.current_step:
            raise ResumeError(f"--step {requested_step} does not match the latest checkpoint "
                              f"{latest} (step {self.current_step}); pass --step "
                              f"{self.current_step} or omit --step to resume it")
        self.last_saved = restored
        return restored

    def save(self) -> str:
        """Save a checkpoint at the current step (once per step)."""
        if self.last_saved and self.last_saved.endswith(f"-{self.current_step}"):
            return self.last_saved
        self.last_saved = save_checkpoint(self.manager)
        return self.last_saved

    def write_config(self, extra: Optional[Mapping[str, Any]] = None) -> str:
        """Write the resolved config to ``config.json`` (logging what changed since the last run)."""
        path = os.path.join(self.directory, CONFIG_FILE)
        if os.path.isfile(path):
            try:
                previous = to_dict(load_config(path, type(self.config)))
            except (ValueError, KeyError, TypeError):
                previous = None
            if previous is not None:
                changed = {k: (previous.get(k), v) for k, v in to_dict(self.config).items()
                           if previous.get(k) != v}
                if changed:
                    log.warning("config differs from %s: %s", path, ", ".join(
                        f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items())))
        save_config(path, self.config)
        if extra:
            with open(os.path.join(self.directory, "run.json"), "w") as f:
                json.dump(dict(extra), f, indent=2)
        return path


def data_is_checkpointable(source: Any) -> bool:
    """Whether a pipeline over ``source`` can save its position in a checkpoint: TFRecord files and
    in-memory ``tf.data`` sources can, HDF5 files (read by a Python generator) cannot."""
    if isinstance(source, tf.data.Dataset):
        return True
    from mzsr_tf.data.records import format_of, resolve_record_files
    return format_of(resolve_record_files(source)[0]) != "hdf5"


# --------------------------------------------------------------------------- command line

EXIT_OK, EXIT_NON_FINITE, EXIT_BAD_INPUT = 0, 1, 2


def config_with_overrides(config: Any, json_path: Optional[str], flags: Mapping[str, Any]) -> Any:
    """``config`` overridden by the JSON object in ``json_path`` (if any), then by ``flags``
    (entries that are ``None`` are ignored).  Bad files are a ``ValueError`` naming them."""
    if json_path:
        try:
            with open(json_path) as f:
                values = json.load(f)
        except (OSError, ValueError) as error:
            raise ValueError(f"--config {json_path}: cannot read a JSON object ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"--config {json_path}: expected a JSON object of {type(config).__name__} "
                             f"options, got {type(values).__name__}")
        config = override(config, values.get("values", values))
    return override(config, {k: v for k, v in flags.items() if v is not None})


def exit_code_of(train: Callable[[], LoopResultLike]) -> int:
    """Run ``train``; 0 when it finished or was interrupted (and saved), 1 on a non-finite loss,
    2 on bad input (checkpoints, records, ``--step``, config values), with a one-line message."""
    from mzsr_tf.checkpoints import CheckpointError
    from mzsr_tf.data.records import RecordError

    try:
        result = train()
    except (CheckpointError, RecordError, ResumeError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_NON_FINITE
    log.info("[*] %s: step %d, checkpoint %s", result.status, result.step, result.checkpoint)
    return EXIT_OK


# --------------------------------------------------------------------------- the loop

@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """When to stop, log and save (in steps, as counted by the step variable)."""

    max_steps: int
    print_every: int
    save_every: int

    def __post_init__(self):
        for name in ("print_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclasses.dataclass
class LoopResult:
    """How ``run_loop`` ended: ``status`` is ``'done'`` or ``'interrupted'``."""

    status: str
    step: int
    checkpoint: Optional[str]
    steps_per_second: float


def check_finite(metrics: Mapping[str, Any], step: int, last_checkpoint: Optional[str]) -> None:
    """Raise ``NonFiniteLossError`` naming every NaN/Inf entry of ``metrics``."""
    bad = {k: np.asarray(v) for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v)))}
    if bad:
        listed = ", ".join(f"{k}={np.array2string(v, precision=6)}" for k, v in sorted(bad.items()))
        kept = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint
                else "no checkpoint had been saved")
        raise NonFiniteLossError(
            f"non-finite loss at step {step} ({listed}): training stopped without saving; {kept}. "
            f"Lower the learning rate, check the training data, or resume from that checkpoint")


def run_loop(step_fn: Callable[[Any], Metrics], batches: Iterator, state: RunState,
             settings: LoopSettings, report: Callable[[int, Metrics, Any], None],
             guard: Optional[SignalGuard] = None) -> LoopResult:
    """Train from the current step to ``settings.max_steps``.

    Args:
      step_fn: one training step on a batch; advances ``state.step`` and returns scalar/vector
        metrics (numpy), every one of which must be finite.
      batches: an iterator of batches (e.g. over a distributed ``tf.data`` dataset).
      state: the run folder; checkpoints are saved every ``save_every`` steps, at the end and
        on SIGINT/SIGTERM.
      report: called every ``print_every`` steps with ``(step, metrics, batch)`` for logs and
        summaries (it may run extra computations on ``batch``).
      guard: an entered ``SignalGuard``; one is installed for the loop when ``None``.
    """
    if guard is None:
        with SignalGuard() as own_guard:
            return run_loop(step_fn, batches, state, settings, report, own_guard)
    start_step = state.current_step
    start = interval_start = time.perf_counter()
    data_seconds = 0.0
    interval_step = start_step
    status = "done"
    while state.current_step < settings.max_steps:
        if guard.requested:
            status = "interrupted"
            break
        t = time.perf_counter()
        batch = next(batches)
        data_seconds += time.perf_counter() - t
        metrics = step_fn(batch)
        step = state.current_step
        check_finite(metrics, step, state.last_saved)
        if step % settings.print_every == 0:
            now = time.perf_counter()
            seconds = now - interval_start
            metrics = dict(metrics)
            metrics["seconds"] = np.float64(seconds)
            metrics["steps_per_second"] = np.float64((step - interval_step) / max(seconds, 1e-9))
            metrics["data_wait_share"] = np.float64(data_seconds / max(seconds, 1e-9))
            report(step, metrics, batch)
            interval_start, interval_step, data_seconds = time.perf_counter(), step, 0.0
        if step % settings.save_every == 0:
            state.save()
    if guard.requested:
        status = "interrupted"
    checkpoint = state.save() if state.current_step > start_step or state.last_saved is None \
        else state.last_saved
    elapsed = time.perf_counter() - start
    rate = (state.current_step - start_step) / max(elapsed, 1e-9)
    if status == "interrupted":
        log.info("[*] stopped by %s at step %d; saved %s", guard.requested, state.current_step,
                 checkpoint)
    else:
        log.info("[*] done at step %d (%.3f steps/s); saved %s", state.current_step, rate, checkpoint)
    return LoopResult(status, state.current_step, checkpoint, rate)


def _summary_metadata(plugin: str, data_class: int) -> summary_pb2.SummaryMetadata:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    metadata.data_class = data_class
    return metadata


# TensorBoard's own summary format, written with core TensorFlow ops (``tf.summary.scalar`` and
# ``tf.summary.image`` need the separate ``tensorboard`` package, which TensorFlow no longer installs).
_SCALAR_METADATA = _summary_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
_IMAGE_METADATA = _summary_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)


def write_scalars(writer: tf.summary.SummaryWriter, step: int, scalars: Mapping[str, Any]) -> None:
    """TensorBoard scalars at ``step``."""
    with writer.as_default():
        for name, value in scalars.items():
            tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                             metadata=_SCALAR_METADATA)


def write_images(writer: tf.summary.SummaryWriter, step: int, images: Mapping[str, tf.Tensor],
                 max_outputs: int = 4) -> None:
    """TensorBoard images (float ``[N, H, W, C]``, clipped to [0, 1], up to ``max_outputs``)."""
    with writer.as_default():
        for name, batch in images.items():
            batch = tf.clip_by_value(tf.cast(batch[:max_outputs], tf.float32), 0.0, 1.0)
            pngs = [tf.io.encode_png(tf.cast(tf.round(image * 255.0), tf.uint8)) for image in batch]
            height, width = batch.shape[1], batch.shape[2]
            tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height))] + pngs)
            tf.summary.write(name, tensor, step=step, metadata=_IMAGE_METADATA)
    writer.flush()
