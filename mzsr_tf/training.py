"""The loop machinery shared by pretraining and meta-training.

Both stages are "one ``tf.function`` step per batch" plus the same bookkeeping, which lives here:

- ``make_strategy``: ``tf.distribute`` strategies by name (``default``, ``mirrored``, ``multiworker``).
  Multi-worker runs: only the chief writes into the run folder (``RunState``), every worker checks it
  starts from the chief's weights (``check_workers_agree``), and a lost worker stops the others with
  ``WorkerLostError`` naming the checkpoint to resume from.
- ``RunState``: the run folder (``<checkpoint_dir>/Model<trial>``, the reference's layout) with its
  bounded ``tf.train.CheckpointManager``, the resolved ``RunConfig`` saved as ``config.json`` beside
  the checkpoints, TensorBoard logs in ``logs/``, and resume with the reference's ``--step`` check.
- ``check_resumable`` and ``RunLock``: a run folder belongs to one run (resuming with another
  configuration is refused before anything is written; two live processes cannot train in it).
- ``SignalGuard``: SIGINT/SIGTERM set a flag; the loop finishes the step in flight, saves, and stops
  cleanly.  A second signal interrupts at once (no save).
- ``run_loop``: steps until ``max_steps``; logs every ``print_every`` (losses, seconds, steps/s, the
  share of wall time spent waiting for data), saves every ``save_every``.  A NaN or Inf in any loss
  stops with ``NonFiniteLossError`` and saves nothing, so the last good checkpoint is what remains.

Steps are counted by an int64 ``tf.Variable`` that the training step itself advances; checkpoints
are numbered by it (``ckpt-<step>``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from mzsr_tf.checkpoints import make_manager, restore_latest, save_checkpoint
from mzsr_tf.config import (STRATEGIES, ConfigError, RunConfig, RuntimeConfig, load_run_config,
                            save_run_config)
from mzsr_tf.model import MZSRNet

log = logging.getLogger(__name__)

LOG_DIR = "logs"

ADAM_EPSILON = 1e-8
"""TF1's ``AdamOptimizer`` default, used by the reference (Keras' default is 1e-7)."""

Metrics = Dict[str, np.ndarray]


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or Inf; nothing was saved after it."""


class ResumeError(ValueError):
    """The requested ``--step`` or configuration does not match the run folder's."""


class WorkerLostError(RuntimeError):
    """A multi-worker run lost contact with one of its workers (its collectives failed or timed
    out); nothing was saved after the last good checkpoint, from which the run can resume."""


WORKER_TIMEOUT_ENV = "MZSR_WORKER_TIMEOUT"
"""Seconds without a heartbeat after which a multi-worker run takes a worker as lost (default 10,
TensorFlow's coordination-service default)."""

COLLECTIVE_TIMEOUT_ENV = "MZSR_COLLECTIVE_TIMEOUT"
"""Seconds one all-reduce may wait for the other workers (default: no limit).  A bound for a worker
that is alive (it still sends heartbeats) but never reaches the step; keep it well above the
slowest step, the first one (tracing) and the chief's checkpoint saves included."""

LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                      tf.errors.CancelledError, tf.errors.AbortedError,
                      tf.errors.FailedPreconditionError)
"""What a collective raises when a peer died, froze, restarted or timed out."""


# --------------------------------------------------------------------------- strategies, precision

def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name.

    - ``default``: no distribution (the current default strategy: one device).
    - ``mirrored``: ``MirroredStrategy`` over all local GPUs (or the CPU when there is none, or the
      logical CPUs configured with ``tf.config.set_logical_device_configuration``).
    - ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``
      (``make_multi_worker_strategy``).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        devices = [d.name for d in gpus] if gpus else [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return make_multi_worker_strategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _seconds_from_env(name: str) -> Optional[float]:
    """A positive number of seconds from the environment variable ``name`` (``None`` when unset)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={text!r}: expected a positive number of seconds")
    return value


def make_multi_worker_strategy() -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` over the cluster of ``TF_CONFIG``, with bounded failure
    detection.

    Every worker runs the same program with its own ``TF_CONFIG``
    (``{"cluster": {"worker": ["host0:port", ...]}, "task": {"type": "worker", "index": i}}``);
    worker 0 (or the ``chief`` task, if the cluster has one) is the chief.  The constructor waits
    until every worker has joined.  A worker that dies is noticed at once by the collectives of the
    step in flight (its connections close), one that freezes or vanishes from the network when it
    sends no heartbeat for ``MZSR_WORKER_TIMEOUT`` seconds (default 10); the step then fails on
    every other worker and ``run_loop`` raises ``WorkerLostError``.  ``MZSR_COLLECTIVE_TIMEOUT``
    optionally bounds each all-reduce as well.

    TensorFlow must set collectives up before its runtime starts; the scripts' start-up only lists
    the devices (to silence their messages), so a runtime that has been started but holds no
    collective configuration is re-created first.  Call this before creating any tensor.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    if not os.environ.get("TF_CONFIG", "").strip():
        raise ConfigError("--strategy multiworker needs TF_CONFIG (the cluster and this worker's task, "
                          "as JSON) in the environment of every worker; see README 'Multi-worker "
                          "training'")
    try:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        spec = resolver.cluster_spec()
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG: {error}") from None
    if not spec.as_dict() or resolver.task_type is None:
        raise ConfigError("TF_CONFIG must name the cluster and this worker's task: "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                          '"index": i}}')
    heartbeat = _seconds_from_env(WORKER_TIMEOUT_ENV)
    collective_timeout = _seconds_from_env(COLLECTIVE_TIMEOUT_ENV)
    ctx = context.context()
    if ctx._context_handle is not None and ctx._collective_leader is None:  # pylint: disable=protected-access
        context._reset_context()  # pylint: disable=protected-access
        ctx = context.context()
    if ctx.coordination_service is None:
        # What MultiWorkerMirroredStrategy configures itself, with our heartbeat timeout.
        jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
                for job in ("chief", "worker") if job in spec.jobs]
        timeout_ms = int(1000 * heartbeat) if heartbeat else 0
        ctx.configure_coordination_service(
            service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
            heartbeat_timeout_in_ms=timeout_ms, shutdown_barrier_timeout_in_ms=timeout_ms,
            coordinated_jobs=jobs)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=options)


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """The number of worker processes (chief included) that train together: 1 without multi-worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``config.PRECISIONS``, else a ``ConfigError`` listing them."""
    return RuntimeConfig(precision=precision).precision


def needs_loss_scaling(precision: str) -> bool:
    """float16's narrow exponent range needs loss scaling; bfloat16 has float32's range."""
    return check_precision(precision) == "mixed_float16"


def make_adam(learning_rate: Any, precision: str = "float32", beta_1: float = 0.9) -> keras.optimizers.Optimizer:
    """Adam with TF1's epsilon (the reference's), wrapped in a dynamic ``LossScaleOptimizer`` under
    ``mixed_float16``; ``beta_1`` is Keras' (and TF1's) default unless given (KernelGAN: 0.5)."""
    adam = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, epsilon=ADAM_EPSILON)
    return keras.optimizers.LossScaleOptimizer(adam) if needs_loss_scaling(precision) else adam


def stage_config(run: RunConfig, stage: type, trainer: str) -> Any:
    """``run.train``, which the ``trainer`` class needs to be a ``stage`` config (a ``TypeError`` if not)."""
    if not isinstance(run.train, stage):
        raise TypeError(f"{trainer} needs a RunConfig whose train is a {stage.__name__}, "
                        f"got {type(run.train).__name__}")
    return run.train


def make_trainer_state(run: RunConfig, strategy: tf.distribute.Strategy, seed: Optional[int],
                       learning_rate: Any) -> Tuple[MZSRNet, tf.Variable, keras.optimizers.Optimizer]:
    """What a trainer of either stage trains, made in ``strategy``'s scope: the network of ``run.model``
    (initialised with ``seed``), the int64 step counter (0) and Adam (``make_adam``) built on the network's
    variables.  ``learning_rate`` is a number, or a function of the step counter returning Adam's
    learning rate (a schedule read at each step)."""
    with strategy.scope():
        model = MZSRNet(run.model, seed=seed)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        optimizer = make_adam(learning_rate(step) if callable(learning_rate) else learning_rate,
                              run.runtime.precision)
        optimizer.build(model.trainable_variables)
    return model, step, optimizer


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the real checkpoints and logs (always, without multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def per_replica_batch(strategy: tf.distribute.Strategy, global_batch: int, what: str) -> int:
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
    size = per_replica_batch(strategy, int(first.shape[0]), "the batch size")

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


class RunLock:
    """An exclusive lock on a run folder for as long as this process trains in it.

    ``fcntl.flock`` on ``<directory>/.lock``: the operating system releases it when the process
    ends, however it ends, so a crashed run never leaves a stale lock behind.  A second process that
    asks for the lock of a folder in use gets a ``ResumeError`` at once.
    """

    FILE = ".lock"

    def __init__(self, directory: str):
        self.directory = directory
        self._file = None

    def acquire(self) -> "RunLock":
        import fcntl
        os.makedirs(self.directory, exist_ok=True)
        handle = open(os.path.join(self.directory, self.FILE), "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ResumeError(f"{self.directory} is in use by a running training ({holder}); wait for it "
                              f"to finish or stop it, or train into another --trial / --checkpoint-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the flock
            self._file = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def latest_checkpoint(directory: Optional[str]) -> Optional[str]:
    """The latest checkpoint of a run folder, or ``None`` (no folder given, none saved, or a folder
    this worker cannot read)."""
    if not directory:
        return None
    try:
        return tf.train.latest_checkpoint(directory)
    except (OSError, tf.errors.OpError):
        return None


def saved_run_config(directory: str) -> Optional[RunConfig]:
    """The ``RunConfig`` of the run in ``directory`` if the folder holds checkpoints of one, else ``None``."""
    if latest_checkpoint(directory) is None:
        return None
    return load_run_config(directory)


def check_resumable(directory: str, run: RunConfig) -> Optional[RunConfig]:
    """Refuse, before anything is written, to train into a run folder that holds checkpoints of a
    run with another configuration; return the folder's saved ``RunConfig`` (``None`` for a new run).

    Only the fields of ``config.RUN_LENGTH_FIELDS`` (how long, how often, where, the strategy) may
    differ.
    """
    saved = saved_run_config(directory)
    if saved is None:
        return None
    differences = run.resume_differences(saved)
    if differences:
        listed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in sorted(differences.items()))
        raise ResumeError(f"{directory} holds a run with another configuration ({listed}); resume it "
                          f"with its own (omit --config and the flags that change it) or train into "
                          f"another --trial / --checkpoint-dir")
    return saved


class RunState:
    """A run folder: checkpoints of ``trackables`` numbered by ``step``, config, TensorBoard logs.

    Args:
      directory: the run folder (created).
      run: the resolved ``RunConfig``, written to ``directory/config.json``.
      step: the int64 step variable the training step advances.
      max_to_keep: the number of checkpoints kept.
      trackables: what a checkpoint holds, e.g. ``model=``, ``optimizer=`` (never a data iterator:
        the data position follows from the seed and the step).
      chief: whether this worker is the chief.  In a multi-worker run every worker saves (TensorFlow
        requires all of them to take part), but only the chief into the run folder: the others
        write their checkpoints, config and logs into a temporary folder of their own
        (``directory`` then; removed by ``close``), and resume from the run folder's checkpoint.
      workers: the number of workers training together; with more than one, ``run_loop`` turns
        a failed collective into ``WorkerLostError``.
    """

    def __init__(self, directory: str, run: RunConfig, step: tf.Variable, max_to_keep: int,
                 chief: bool = True, workers: int = 1, **trackables):
        self.run_directory = directory
        self.chief = chief
        self.workers = workers
        self.directory = directory if chief else tempfile.mkdtemp(prefix="mzsr_worker_")
        os.makedirs(self.directory, exist_ok=True)
        # A non-chief's scratch folder goes when the state does (or at exit), whatever ends the run.
        self._scratch = None if chief else weakref.finalize(self, shutil.rmtree, self.directory, True)
        self.run = run
        self.step = step
        self.manager = make_manager(self.directory, max_to_keep, step=step, **trackables)
        self.last_saved: Optional[str] = self.manager.latest_checkpoint
        self.writer = tf.summary.create_file_writer(os.path.join(self.directory, LOG_DIR))

    def close(self) -> None:
        """Close the summary writer; a non-chief worker removes its temporary folder."""
        self.writer.close()
        if self._scratch is not None:
            self._scratch()

    def run_checkpoint(self, path: Optional[str]) -> Optional[str]:
        """The run folder's name of checkpoint ``path`` (a non-chief's copy is named after the
        chief's, which holds the same values)."""
        if path is None or self.chief:
            return path
        return os.path.join(self.run_directory, os.path.basename(path))

    @property
    def current_step(self) -> int:
        return int(self.step.numpy())

    def resume(self, requested_step: Optional[int]) -> Optional[str]:
        """Restore the latest checkpoint of the folder, if any; return its prefix or ``None``.

        ``requested_step`` is the reference's ``--step``: ``None`` resumes whatever is there; a
        number must equal the latest checkpoint's step (``0`` with no checkpoint means a fresh
        start), otherwise ``ResumeError`` says what the folder holds.
        """
        # A non-chief resumes from the chief's run folder (its own folder is a fresh scratch one).
        manager = self.manager if self.chief else tf.train.CheckpointManager(
            self.manager.checkpoint, self.run_directory, max_to_keep=None)
        latest = manager.latest_checkpoint
        if latest is None:
            if requested_step:
                raise ResumeError(f"--step {requested_step}: {self.run_directory} holds no checkpoint "
                                  f"to resume (use --step 0 to start a new run)")
            return None
        restored = restore_latest(manager)
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

    def write_config(self) -> str:
        """Write the resolved ``RunConfig`` to ``config.json``; return its path."""
        return save_run_config(self.directory, self.run)


def train_in_folder(run: RunConfig, directory: str, strategy: tf.distribute.Strategy,
                    train: Callable[[bool], "LoopResult"]) -> "LoopResult":
    """Run ``train(chief)`` as the owner of the run folder ``directory``.

    The chief first refuses a folder holding another configuration (``check_resumable``, before
    anything is written) and holds the folder's ``RunLock`` while ``train`` runs; a worker lost while
    the run starts (e.g. the chief refused the folder and exited) becomes ``WorkerLostError``.
    """
    chief = is_chief(strategy)
    try:
        if chief:
            check_resumable(directory, run)
        with RunLock(directory) if chief else contextlib.nullcontext():
            return train(chief)
    except LOST_WORKER_ERRORS as error:
        if worker_count(strategy) <= 1:
            raise
        raise worker_lost(error, None, directory=directory) from None


def open_run_state(directory: str, run: RunConfig, step: tf.Variable, strategy: tf.distribute.Strategy,
                   chief: bool, **trackables) -> "RunState":
    """The ``RunState`` of a training stage, saving ``trackables`` (model, optimizer) and the step.

    No data pipeline state is saved: the pipelines are deterministic functions of (seed, step)
    (their ``start_step``), so a resumed run rebuilds its data stream at the restored step and
    continues exactly where the interrupted run was (and a training state stays small: weights,
    optimizer slots, step).
    """
    return RunState(directory, run, step, run.train.max_to_keep, chief=chief, workers=worker_count(strategy),
                    **trackables)


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


def _collective_reason(error: tf.errors.OpError) -> str:
    """The useful line of a failed collective's message (TensorFlow's holds a Python stack too)."""
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        for marker in ("Collective ops is aborted by:", "aborted by:"):
            if marker in line:
                reason = line.split(marker, 1)[1].strip()
                # the heartbeat message names the lost task on the next line
                if reason.endswith(":") and i + 1 < len(lines):
                    reason = f"{reason} {lines[i + 1]}"
                return reason
    for line in lines:
        if "timed out" in line or "heartbeat" in line:
            return line
    return lines[-1] if lines else type(error).__name__


def worker_lost(error: tf.errors.OpError, state: Optional[RunState], step: Optional[int] = None,
                directory: Optional[str] = None) -> WorkerLostError:
    """The ``WorkerLostError`` of a collective that failed in a multi-worker run: in ``step``, or
    while starting when ``None`` (``directory``: the run folder when there is no ``state`` yet).
    The failed step may have advanced the step counter and part of the weights, so nothing is
    saved."""
    if state is not None:
        directory = state.run_directory
        last = latest_checkpoint(state.run_directory) or state.run_checkpoint(state.last_saved)
    else:
        last = latest_checkpoint(directory)
    kept = (f"the last checkpoint is {last}" if last
            else f"no checkpoint had been saved in {directory}")
    reason = " ".join(_collective_reason(error).split())
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return WorkerLostError(
        f"lost a worker of the multi-worker run {f'during step {step}' if step else 'at start-up'} "
        f"({type(error).__name__}: {reason}); training stopped without saving and {kept}. "
        f"Resume it by starting every worker again with the same command, or on fewer machines "
        f"with --strategy default or mirrored (TF_CONFIG unset)")


def check_workers_agree(strategy: tf.distribute.Strategy, state: RunState,
                        variables: Sequence[tf.Variable]) -> None:
    """In a multi-worker run, check that every worker starts from the chief's step and weights.

    Each worker restores (or loads its transfer weights) by itself, so all of them must see the
    same files; one that does not would otherwise train different weights with the same updates.
    Raises ``ResumeError`` naming the run folder.
    """
    if state.workers <= 1:
        return
    local = np.array([float(state.current_step),
                      sum(float(np.sum(np.asarray(v.numpy(), np.float64))) for v in variables),
                      sum(float(np.sum(np.square(np.asarray(v.numpy(), np.float64)))) for v in variables)])

    def first_replica_only():
        first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        return tf.constant(local) * tf.cast(first, tf.float64)

    @tf.function  # collectives run eagerly would warn on stderr
    def first_replicas_values():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(first_replica_only), axis=None)

    try:
        reference = first_replicas_values().numpy()
    except LOST_WORKER_ERRORS as error:
        raise worker_lost(error, state) from None
    # The sums of identical weights agree to float64 rounding, whatever the device.
    if reference[0] != local[0] or not np.allclose(local[1:], reference[1:], rtol=1e-9, atol=0.0):
        raise ResumeError(
            f"the workers of the multi-worker run do not start from the same weights (this one: step "
            f"{int(local[0])}, the chief: step {int(reference[0])}): each worker resumes from the "
            f"chief's run folder {state.run_directory} and loads the same transfer checkpoint, so "
            f"these must be on storage every worker sees, at the same path")


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
        step_before = state.current_step
        try:
            metrics = step_fn(batch)
        except LOST_WORKER_ERRORS as error:
            if state.workers <= 1:
                raise
            raise worker_lost(error, state, step_before + 1) from None
        step = state.current_step
        check_finite(metrics, step, state.run_checkpoint(state.last_saved))
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
    checkpoint = state.run_checkpoint(checkpoint)
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
