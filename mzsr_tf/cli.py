"""The command-line layer: every script's flags, their translation into library calls, and exit codes.

Each script in ``scripts/`` is one line: ``sys.exit(cli.<script>_script(argv))``.  Here each script
has a parser (``*_parser``, its choices taken from ``mzsr_tf.config``), and a ``*_from_flags(args)``
function that does its work and returns the exit code through ``run_command``, the one place that
maps errors to exit codes (``exit_code_of``):

- 0: success (a training interrupted by SIGINT/SIGTERM has saved and also exits 0);
- 1: the work failed (a non-finite training loss, a full disk, a TensorFlow runtime error), one line
  on stderr;
- 2: bad input (a file, folder, flag or configuration value), one line on stderr naming it.

TensorFlow is imported only inside the functions, after ``prepare_environment`` has set the device
and logging variables it reads at import.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from mzsr_tf.config import (DEFAULT_MAX_MEMORY, DEFAULT_SON_GRID, MIN_TILE, PRECISIONS, PRESETS, SON_GRIDS, STRATEGIES, ConfigError,
                            MetaTrainConfig, PretrainConfig, Preset, RunConfig, get_preset, override,
                            preset_for_model, read_json_object)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""Where relative preset paths (``checkpoints/...``) and the demo images are looked up."""
DEMO_DIR = os.path.join(REPO_ROOT, "dataset", "demo")
DEMO_KERNEL = os.path.join(DEMO_DIR, "kernel.mat")
MODEL_CHOICES = tuple(sorted(p.model_index for p in PRESETS.values()))
ESTIMATOR_CHOICES = ("edges", "kernelgan")
"""``--estimator``: the names of ``mzsr_tf.blind.ESTIMATORS`` (listed here so that no TensorFlow is imported to parse)."""
ESTIMATOR_DEFAULT = ESTIMATOR_CHOICES[0]
MODEL_HELP = ", ".join(f"{p.model_index} {p.reference_name}" for p in
                       sorted(PRESETS.values(), key=lambda p: p.model_index))

log = logging.getLogger("mzsr_tf")


class OutputError(RuntimeError):
    """An output could not be written (a full disk, a read-only folder found late)."""


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


def prepare_environment(gpu: Optional[str] = None, verbose: bool = False) -> None:
    """Set the variables TensorFlow reads at import (its C++ log level and, when ``gpu`` is given,
    the visible GPU: ``CUDA_VISIBLE_DEVICES``, the reference's ``--gpu``), then import it.

    Unless ``verbose``, TensorFlow is imported and its devices initialised with stderr pointed at
    ``/dev/null``: its C++ start-up lines (oneDNN, CUDA probing, ``failed call to cuInit`` on a
    machine without a GPU) are written before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so the variable
    alone cannot silence them.  Python errors raised by the import still reach stderr.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if gpu is not None:
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if verbose:
        return
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
        tf.config.list_logical_devices()  # device initialisation: the CUDA probing messages
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)


def _parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A script's parser: its description, and an epilog of examples and exit codes kept as written."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_verbose(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's start-up messages on stderr")
    return parser


def _run_script(parser: argparse.ArgumentParser, from_flags: Callable[[Any], int],
                argv: Optional[Sequence[str]], check: Optional[Callable[[Any], Optional[str]]] = None) -> int:
    """Parse ``argv`` with ``parser``; ``check(args)`` may return a usage error (argparse exits 2 with
    it) or raise a ``ConfigError`` naming the flag (one line on stderr, exit 2), before TensorFlow is
    imported; set up TensorFlow's environment (``--gpu``, ``--verbose``); return ``from_flags(args)``."""
    args = parser.parse_args(argv)
    try:
        problem = check(args) if check else None
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    if problem:
        parser.error(problem)
    prepare_environment(getattr(args, "gpu", None), args.verbose)
    return from_flags(args)


# --------------------------------------------------------------------------- errors -> exit codes

def exit_code_of(error: BaseException) -> Optional[int]:
    """The exit code an error ends a command with, or ``None`` for a bug (left to the traceback).

    Bad input -- every project error class derives from ``ValueError`` (``ConfigError``,
    ``CheckpointError``, ``KernelError``, ``MetaTestError``, ``RecordError``, ``ResumeError``,
    ``ImageReadError``, ``EvaluationError``, ``TestSetError``), and missing or unreadable paths --
    gives 2; a non-finite training loss, a lost worker of a multi-worker run, a full disk or a
    TensorFlow runtime error gives 1.
    """
    from mzsr_tf.training import NonFiniteLossError, WorkerLostError
    if isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                          PermissionError)):
        return EXIT_BAD_INPUT
    if isinstance(error, (NonFiniteLossError, WorkerLostError, OutputError, OSError)):
        return EXIT_FAILURE
    import tensorflow as tf
    if isinstance(error, tf.errors.OpError):
        return EXIT_FAILURE
    return None


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split("\n")[0].split()) if isinstance(error, OSError) else text


def run_command(work: Callable[[Any], int], args: Any) -> int:
    """``work(args)`` with library messages on stdout; an error becomes one line on stderr and the
    exit code of ``exit_code_of``."""
    _setup_logging()
    try:
        return work(args)
    except Exception as error:  # noqa: BLE001 -- mapped below, re-raised when it is a bug
        code = exit_code_of(error)
        if code is None:
            raise
        print(f"error: {_one_line(error)}", file=sys.stderr, flush=True)
        return code


def write_reason(error: BaseException) -> str:
    """Why a write failed, in the system's words (``No space left on device``), without TensorFlow's
    internals (``{{function_node __wrapped__SaveV2...}}``, the temporary file it wrote, ``[Op:SaveV2]``)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{.*?\}\}", "", message).split("[Op:")[0].strip()
    return " ".join(message.rsplit("; ", 1)[-1].split()) or type(error).__name__


@contextlib.contextmanager
def output_errors(label: str, path: str):
    """Map a failed write of the block (an ``OSError`` or TensorFlow ``OpError``: a full disk) to one
    ``OutputError`` line ``<label>: <reason>`` (``label`` names the flag and path); a folder ``path``
    that the block created is removed, so nothing partial is left."""
    import shutil
    import tensorflow as tf
    existed = os.path.lexists(path)
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        if not existed and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        raise OutputError(f"{label}: {write_reason(error)}") from None


def _with_option(option: str, value: Any, build: Callable[[], Any]) -> Any:
    """``build()``, with a ``ConfigError`` it raises prefixed by the flag that caused it."""
    try:
        return build()
    except ConfigError as error:
        raise ConfigError(f"{option} {value}: {error}") from None


# --------------------------------------------------------------------------- presets and checkpoints

def checkpoint_for_preset(requested: Optional[str], preset: Preset, repo_root: str = REPO_ROOT) -> str:
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


def split_names(values) -> Optional[list]:
    """Flag values given as ``a,b c`` (commas and/or spaces) as a list of names; None stays None."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


# --------------------------------------------------------------------------- meta-test

def meta_test_from_flags(args) -> int:
    """``scripts/main.py`` test mode; SIGINT (Ctrl-C) and SIGTERM end it at once (``ExitOnSignal``)."""
    with ExitOnSignal("the meta-test"):
        return run_command(_meta_test, args)


class ExitOnSignal:
    """Within ``with ExitOnSignal(what):`` in the main thread, SIGINT and SIGTERM end the process within
    moments, even while a compiled graph runs: the temporary files of the writes under way are removed
    (``atomic.remove_temporaries``; every output is written atomically, so only complete files remain),
    one line goes to stderr and the process exits with ``128 + signal`` (130 for Ctrl-C, 143 for SIGTERM).

    Python runs a signal handler only when the main thread returns to the interpreter, which a graph
    call may not do for a long time; but its C-level handler writes the signal's number to the wakeup
    fd (``signal.set_wakeup_fd``) at once, and a watcher thread waiting on that fd acts on it (TensorFlow
    releases the GIL while a graph runs).  For a command with nothing to save (a meta-test), unlike
    training (``training.SignalGuard``: finish the step, save, stop).  Outside the main thread it does
    nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, what: str):
        self.what = what
        self._previous: Dict[int, Any] = {}
        self._sockets = None
        self._previous_fd = -1

    def __enter__(self) -> "ExitOnSignal":
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, lambda signum, frame: self.stop(signum))
        threading.Thread(target=self._watch, args=(reader,), name="exit-on-signal", daemon=True).start()
        return self

    def _watch(self, reader) -> None:
        with reader:
            while True:
                try:
                    data = reader.recv(1)
                except OSError:
                    return
                if not data or data[0] == 0:  # closed, or __exit__'s sentinel
                    return
                if data[0] in self.SIGNALS:
                    self.stop(data[0])

    def stop(self, signum: int) -> None:
        """Remove the partial files, write one line and end the process with ``128 + signum``."""
        from mzsr_tf.atomic import remove_temporaries
        try:
            remove_temporaries()
            name = signal.Signals(signum).name
            os.write(2, f"error: {name} received: {self.what} stopped; the files it wrote are complete, "
                        f"nothing partial is left\n".encode())
        finally:
            os._exit(128 + signum)

    def __exit__(self, *exc_info) -> None:
        if self._sockets is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_fd)
        reader, writer = self._sockets
        with contextlib.suppress(OSError):
            writer.send(b"\0")
        writer.close()
        self._sockets = None


def _meta_test(args) -> int:
    """Inputs, kernels and the output folder are checked before the checkpoint is loaded (fast
    failure); a write failure mid-run is an ``OutputError`` naming the file."""
    from mzsr_tf.atomic import check_output_file, check_output_folder, write_errors_as
    from mzsr_tf.checkpoints import load_weights
    from mzsr_tf.kernels import KernelSource
    from mzsr_tf.meta_test import MetaTester, before_after_figure, load_inputs, output_folder, run_folder
    from mzsr_tf.model import MZSRNet

    preset = preset_for_model(args.model if args.model is not None else 0)
    config = adaptation_config_from_flags(args, preset)
    log.info("model %d: %s, x%g, %s down-sampling, %d step(s), inner_lr %s, %s", preset.model_index,
             preset.reference_name, config.scale, config.ds_method, config.num_steps,
             list(config.inner_lr.rates(config.num_steps)), config.precision)
    normalize = bool(getattr(args, "normalize_kernel", False))
    gt_dir = args.gtpath or None
    estimating = None
    if getattr(args, "estimate_iterations", None) is not None and not args.estimate_kernel:
        raise ConfigError("--estimate-iterations is a setting of --estimate-kernel, which is not given")
    if getattr(args, "estimator", None) != ESTIMATOR_DEFAULT and not args.estimate_kernel:
        raise ConfigError("--estimator is a setting of --estimate-kernel, which is not given")
    if getattr(args, "estimate_kernel", False):
        estimating, kernel_source = _estimating_kernels(args, config)
    else:
        kernelpath = args.kernelpath if args.kernelpath is not None else DEMO_KERNEL
        # a .mat file, a folder of <input>.mat, or ''
        kernel_source = KernelSource.from_path(kernelpath, normalize=normalize)
        if kernelpath:
            log.info("%s", kernel_source.description)
        else:
            log.info("no --kernelpath: the son is made by bicubic ('cubic') down-sampling")
        inputs = load_inputs(args.inputpath, kernel_source, config.scale, gt_dir=gt_dir, log=log.info,
                             son_grid=config.son_grid, ds_method=config.ds_method)
    tiling = tile_policy_from_flags(args, TileProgress())
    if estimating is None:  # (estimated kernels' inputs are read after the estimator loads)
        for path, image in zip(inputs.input_paths, inputs.images):
            _check_tiling(tiling, path, image.shape, config.scale)
    check_output_folder(output_folder(args.savepath, config.num_steps), "--savepath")
    if args.figure:
        check_output_file(args.figure, "--figure")
    checkpoint = checkpoint_for_preset(args.checkpoint, preset, REPO_ROOT)
    model = MZSRNet()
    loaded = load_weights(model, checkpoint)
    if estimating is not None:  # the slow part, after every cheap check (the checkpoint loads)
        inputs = load_inputs(args.inputpath, kernel_source, config.scale, gt_dir=gt_dir, log=log.info,
                             son_grid=config.son_grid, ds_method=config.ds_method)
    tester = MetaTester(model.trainable_variables, config, tiling)
    extra_info = {"checkpoint": loaded, "model": preset.reference_name, "kernel_normalized": normalize}
    if estimating is not None:
        extra_info["kernel_estimation"] = estimating.record()
    with write_errors_as(OutputError):
        summary = run_folder(tester, args.inputpath, args.savepath, kernel_source, gt_dir=gt_dir, log=log.info,
                             extra_info=extra_info, inputs=inputs)
        if args.figure:
            log.info("figure: %s", before_after_figure(summary, output_folder(args.savepath, config.num_steps),
                                                       args.figure))
    return EXIT_OK


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
            print(f"  {label}: {total} tiles, {seconds:.1f} s", file=self.stream, flush=True)


def _estimating_kernels(args, config):
    """``--estimate-kernel``: refused with ``--kernelpath``; every input checked (readable, large enough)
    before any estimation; the estimates go beside the SR output, ``SAVEPATH/NN/<input>.mat``."""
    from mzsr_tf.blind import EstimatingKernels, check_estimable
    from mzsr_tf.data.images import list_images
    from mzsr_tf.meta_test import MetaTestError, output_folder, read_rgb

    if args.kernelpath is not None:
        raise ConfigError("--estimate-kernel and --kernelpath together: give a kernel, or have it estimated, not both")
    paths = list_images(args.inputpath, "input", error=MetaTestError)
    images = [read_rgb(path) for path in paths]
    estimator = estimator_from_flags(args.estimator, args.estimate_iterations, "--estimate-iterations")
    check_estimable(paths, estimator, images)
    save_dir = output_folder(args.savepath, config.num_steps)
    estimating = EstimatingKernels(save_dir, config.scale, estimator, log=log.info)
    log.info("no kernel given: each input's kernel is estimated (%s, %d images) and saved in %s",
             args.estimator, len(paths), save_dir)
    return estimating, estimating.source


# --------------------------------------------------------------------------- training runs

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


def meta_train_from_flags(args) -> int:
    """``scripts/main.py --train``: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input."""
    def train(args) -> int:
        from mzsr_tf.meta_train import run_meta_training
        run, directory = _training_folder(args, MetaTrainConfig)
        return _report_training(run_meta_training(run, directory, requested_step=args.step))
    return run_command(train, args)


def pretrain_from_flags(args) -> int:
    """``scripts/pretrain.py``: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input."""
    def train(args) -> int:
        from mzsr_tf.pretrain import run_pretraining
        run, directory = _training_folder(args, PretrainConfig)
        return _report_training(run_pretraining(run, directory, requested_step=args.step))
    return run_command(train, args)


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


# --------------------------------------------------------------------------- test sets and evaluation

def make_testsets_from_flags(args) -> int:
    """``scripts/make_testsets.py``: the paper's LR inputs, kernels and modcropped GT."""
    return run_command(_make_testsets, args)


def _make_testsets(args) -> int:
    from mzsr_tf.atomic import check_output_folder, write_errors_as
    from mzsr_tf.testsets import PAPER_KERNELS, make_testset
    check_output_folder(args.out, "--out")
    with write_errors_as(OutputError):
        make_testset(args.hr, args.out, split_names(args.kernels) or list(PAPER_KERNELS),
                     split_names(args.sets), log=log.info)
    log.info("test set written to %s", args.out)
    return EXIT_OK


def checkpoints_for_presets(entries, presets, repo_root: str) -> dict:
    """The checkpoint of each preset from ``--checkpoint`` entries.

    An entry is ``PATH`` (for every preset) or ``PRESET=PATH`` (e.g. ``bicubic_x2=checkpoints/Model/
    Bicubicx2``); a preset with neither gets ``checkpoint_for_preset``'s default (the authors' file in
    ``checkpoints/Model/`` or the project's own model).
    """
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
    return {preset: by_preset.get(preset) or checkpoint_for_preset(common, get_preset(preset), repo_root)
            for preset in presets}


def evaluate_from_flags(args) -> int:
    """``scripts/evaluate.py``: the benchmark table over test sets × kernels × steps, and figures."""
    return run_command(_evaluate, args)


def _evaluate(args) -> int:
    from mzsr_tf import evaluate
    from mzsr_tf.atomic import check_output_folder, write_errors_as

    cells = evaluate.find_cells(args.testsets, split_names(args.kernels), split_names(args.sets))
    check_output_folder(args.out, "--out")  # before any image is computed
    presets = sorted({evaluate.cell_setting(cell, args.preset)[0] for cell in cells})
    checkpoints = checkpoints_for_presets(args.checkpoint, presets, REPO_ROOT)
    zssr = evaluate.ZSSRConfig(max_steps=args.zssr_steps)
    log.info("%d cells (%s), steps %s, baselines %s", len(cells),
             ", ".join(f"{c.paper_kernel.name}/{c.set_name}" for c in cells), args.steps,
             ", ".join(split_names(args.baselines)) or "none")
    results = evaluate.evaluate(cells, checkpoints, steps=args.steps, baselines=split_names(args.baselines),
                                zssr=zssr, figure_images=split_names(args.figure_images), log=log.info,
                                self_ensemble=args.self_ensemble, preset=args.preset, limit=args.limit,
                                son_grid=args.son_grid, tiling=tile_policy_from_flags(args, TileProgress()),
                                son_crops=args.fast_crops or 0)
    with write_errors_as(OutputError):
        paths = evaluate.write_results(results, args.out, command=getattr(args, "command", None),
                                       testsets=args.testsets)
    log.info("\n%s", evaluate.markdown_table(results))
    log.info("[*] %d images in %.1f s; wrote %s", len(results["images"]), results["seconds_total"],
             ", ".join(paths.values()))
    return EXIT_OK


# --------------------------------------------------------------------------- scripts/main.py

def main_parser() -> argparse.ArgumentParser:
    """``scripts/main.py``: the reference's flags (meta-test by default, ``--train`` to meta-train)."""
    parser = _parser("scripts/main.py",
        description="MZSR with the reference's flags. Meta-test (default): super-resolve every image "
                    "of --inputpath by adapting the network to it; with no arguments it runs on the demo "
                    "images in dataset/demo/ with the project's own model. --train: meta-train from the "
                    "bicubic-pretrained weights (resumes CHECKPOINT_DIR/Model<trial> if it exists).",
        epilog="examples:\n"
               "  python scripts/main.py --gpu 0 --inputpath LR_DIR --gtpath GT_DIR "
               "--kernelpath kernel.mat --savepath OUT --model 0 --num 10\n"
               "  python scripts/main.py --train --trial 1 --model 3 --config recipe.json --iterations 5000\n"
               "exit codes: 0 success, 2 bad input (the message names the file or flag), 1 anything else")
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")
    test = parser.add_argument_group("meta-test")
    test.add_argument("--inputpath", default=os.path.join(DEMO_DIR, "Input"), help="folder of LR images")
    test.add_argument("--gtpath", default=os.path.join(DEMO_DIR, "GT"),
                      help="folder of GT images, paired with the inputs by sorted order ('' for none)")
    test.add_argument("--kernelpath", default=None,
                      help="blur kernel .mat (key 'kernel', summing to 1), or a folder of <input name>.mat "
                           "per image; '' means bicubic degradation (default: dataset/demo/kernel.mat)")
    test.add_argument("--estimate-kernel", action="store_true",
                      help="estimate each input's kernel from the input itself (KernelGAN, mzsr_tf/blind.py), "
                           "save it as SAVEPATH/NN/<input>.mat and use it; not with --kernelpath")
    test.add_argument("--figure", default=None, metavar="PNG",
                      help="also write a figure: per input, crops of its bicubic upscale and of the SR output, "
                           "and the kernel used")
    test.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default=ESTIMATOR_DEFAULT,
                      help="with --estimate-kernel: edges (a Gaussian fitted at the edges, < 1 s; the better one on "
                           "the blind benchmark) or kernelgan (KernelGAN, ~30 s per image)")
    test.add_argument("--estimate-iterations", type=int, default=None,
                      help="with --estimate-kernel --estimator kernelgan: KernelGAN's iterations (default 2000)")
    test.add_argument("--normalize-kernel", action="store_true",
                      help="divide each kernel by its sum instead of refusing one whose sum is not 1 "
                           "(within 1e-3)")
    test.add_argument("--savepath", default="results/demo",
                      help="SR images and results.json go to SAVEPATH/NN/ (checked writable before the run)")
    test.add_argument("--model", type=int, choices=MODEL_CHOICES, default=None,
                      help=f"preset: {MODEL_HELP} (default 0; --train: the run's own when resuming)")
    test.add_argument("--num", type=int, default=1, dest="num_steps",
                      help="number of adaptation steps (any positive integer)")
    test.add_argument("--checkpoint", default=None,
                      help="TF1 or TF2 checkpoint prefix, or a folder holding one (default: the preset's)")
    test.add_argument("--scale", type=float, default=None, help="super-resolution factor (default: the preset's)")
    test.add_argument("--noise", type=float, default=0.0, help="std of noise added to the son (images in [0, 1])")
    test.add_argument("--backprojection", action="store_true", help="refine by 4 back-projection iterations")
    test.add_argument("--self-ensemble", action="store_true",
                      help="average the eight flips/rotations of each input, each adapted on its own with its "
                           "kernel turned alike (beyond the paper; 8x the time)")
    test.add_argument("--son-grid", choices=SON_GRIDS, default=None,
                      help="exact (default): the son of the input cropped at the bottom and right to a multiple "
                           "of the scale (beyond the reference; the output still covers the whole input); "
                           "reference: the son of the whole input, as the reference (its direct subsampling grid "
                           "is stretched when a side is not a multiple of the scale)")
    test.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                      help="float32 (default) reproduces the reference; mixed_*: float16/bfloat16 "
                           "convolutions with float32 weights (meta-test and training)")
    _add_tiling_flags(test)
    train = parser.add_argument_group("meta-training (--train)")
    train.add_argument("--train", action="store_true", dest="is_train", help="meta-train instead of testing")
    _add_training_flags(train, MetaTrainConfig)
    train.add_argument("--transfer", default=None,
                       help="pre-trained weights to start from ('none' or '': random weights; default "
                            "'auto': the authors' Pretrained if dropped into checkpoints/Pretrained/, else "
                            "the project's checkpoints/pretrained_x2)")
    train.add_argument("--first-order-until", type=int, default=None,
                       help="first-order meta-gradients before this iteration, second order from it")
    train.add_argument("--freeze-loss-weights", action="store_true",
                       help="keep the query-loss weights at 1/K (the reference's behaviour)")
    return _add_verbose(parser)


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


def _check_tiling(tiling, path: str, shape, scale: float) -> None:
    """The tile of an input under ``--tile``/``--max-memory``, found before the checkpoint loads (a
    ``TilingError`` names the input)."""
    from mzsr_tf.config import ModelConfig
    from mzsr_tf.tiling import TilingError
    try:
        tiling.tile_for(shape, scale, ModelConfig().depth, 2)
    except TilingError as error:
        raise TilingError(f"{path}: {error}") from None


def adaptation_config_from_flags(args, preset: Preset):
    """The meta-test's ``AdaptationConfig``: the preset's, with ``--num``, ``--scale``, ``--noise``,
    ``--backprojection``, ``--self-ensemble``, ``--son-grid``, ``--fast-crops`` and ``--precision`` applied (each
    bad value named by its flag)."""
    config = preset.adaptation_config()
    for option, key, value in (("--num", "num_steps", args.num_steps), ("--scale", "scale", args.scale),
                               ("--noise", "noise_std", args.noise),
                               ("--backprojection", "back_projection", bool(args.backprojection)),
                               ("--self-ensemble", "self_ensemble", bool(getattr(args, "self_ensemble", False))),
                               ("--son-grid", "son_grid", getattr(args, "son_grid", None)),
                               ("--fast-crops", "son_crops", getattr(args, "fast_crops", None)),
                               ("--precision", "precision", args.precision)):
        if value is not None:
            config = _with_option(option, value, lambda: override(config, {key: value}))
    return config


def main_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/main.py``: meta-test, or meta-train with ``--train``."""
    return _run_script(main_parser(), lambda args: (meta_train_from_flags if args.is_train else
                                                     meta_test_from_flags)(args), argv, _check_main_flags)


def _check_main_flags(args) -> Optional[str]:
    """``scripts/main.py``'s flags checked before TensorFlow is imported: ``--num`` (a usage error), and
    in test mode every flag of the meta-test's ``AdaptationConfig`` (``--scale``, ``--noise``, ...: a
    ``ConfigError`` naming the flag, with the ranges of ``mzsr_tf.config``)."""
    if args.num_steps < 1:
        return f"--num must be a positive integer, got {args.num_steps}"
    if not args.is_train:
        adaptation_config_from_flags(args, preset_for_model(args.model if args.model is not None else 0))
    return None


# --------------------------------------------------------------------------- scripts/pretrain.py

def pretrain_parser() -> argparse.ArgumentParser:
    """``scripts/pretrain.py``: large-scale "bicubic" pretraining (the reference's Large-Scale_Training)."""
    parser = _parser("scripts/pretrain.py",
        description="Large-scale 'bicubic' pretraining of the MZSR network. Records come from "
                    "scripts/generate_tfrecord.py --mode pretrain; an existing run is resumed.",
        epilog="example:\n  python scripts/pretrain.py --trial 1 --tfrecord dataset/records/train_SR_X2.tfrecord\n"
               "exit codes: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input")
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")
    _add_training_flags(parser, PretrainConfig)
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                        help="dtype of the convolutions (default float32; variables stay float32)")
    return _add_verbose(parser)


def pretrain_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/pretrain.py``."""
    return _run_script(pretrain_parser(), pretrain_from_flags, argv)


# --------------------------------------------------------------------------- scripts/generate_tfrecord.py

def generate_tfrecord_parser() -> argparse.ArgumentParser:
    """``scripts/generate_tfrecord.py``: training patches into TFRecord or HDF5."""
    parser = _parser("scripts/generate_tfrecord.py",
        description="Cut training patches from folders of HR images into TFRecord (the reference's "
                    "schema) or HDF5.",
        epilog="examples:\n"
               "  python scripts/generate_tfrecord.py --labelpath DIV2K_train_HR --tfrecord dataset/records/train_SR_MZSR\n"
               "  python scripts/generate_tfrecord.py --labelpath DIV2K_train_HR --tfrecord dataset/records/train_SR_X2 "
               "--mode pretrain --scale 2\n"
               "exit codes: 0 done, 2 bad input (one line naming the file or flag), 1 anything else")
    parser.add_argument("--labelpath", required=True, nargs="+",
                        help="folder(s) of HR images (PNG/BMP/JPEG/TIFF), e.g. ./DIV2K_train_HR")
    parser.add_argument("--tfrecord", default="train_SR_MZSR",
                        help="output file; '.tfrecord' (or '.h5' for --format hdf5) is appended "
                             "unless present (default: train_SR_MZSR)")
    parser.add_argument("--mode", choices=["mzsr", "pretrain"], default="mzsr",
                        help="mzsr: augmented HR patches ('label'); pretrain: HR + bicubic LR pairs "
                             "('label', 'image'), no augmentation")
    parser.add_argument("--format", choices=["tfrecord", "hdf5"], default=None,
                        help="default: from the extension of --tfrecord, else tfrecord")
    parser.add_argument("--patch", type=int, default=None,
                        help="HR patch side (default 64 for mzsr, 48 x scale for pretrain)")
    parser.add_argument("--stride", type=int, default=120, help="step between patch origins, in HR pixels")
    parser.add_argument("--scale", type=int, default=2, help="pretrain mode: LR = HR / scale")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    parser.add_argument("--shards", type=int, default=1, help="split the output into N files")
    parser.add_argument("--skip-small", action="store_true",
                        help="skip images smaller than a patch instead of stopping")
    parser.add_argument("--quiet", action="store_true", help="no per-image progress")
    return _add_verbose(parser)


def generate_tfrecord_from_flags(args) -> int:
    """Write the records and print a summary."""
    def generate(args) -> int:
        from mzsr_tf.atomic import check_output_file, write_errors_as
        from mzsr_tf.data.build import PatchRecipe, build_records, output_path
        recipe = PatchRecipe(mode=args.mode, patch_size=args.patch, stride=args.stride, scale=args.scale,
                             seed=args.seed)
        check_output_file(output_path(args.tfrecord, args.format), "--tfrecord")  # before any image is read
        with write_errors_as(OutputError):
            summary = build_records(args.labelpath, args.tfrecord, recipe, fmt=args.format,
                                    num_shards=args.shards, skip_small=args.skip_small,
                                    progress=None if args.quiet else print)
        folder = os.path.dirname(os.path.abspath(args.tfrecord))
        print(f"Num of patches: {summary['num_records']} from {summary['num_images']} images "
              f"in {summary['seconds']:.1f} s")
        if summary["skipped_images"]:
            print(f"skipped {len(summary['skipped_images'])} image(s) smaller than a patch: "
                  + ", ".join(summary["skipped_images"]))
        for entry in summary["files"]:
            print(f"  {os.path.join(folder, entry['file'])}: {entry['count']} records")
        return EXIT_OK
    return run_command(generate, args)


def generate_tfrecord_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/generate_tfrecord.py``."""
    return _run_script(generate_tfrecord_parser(), generate_tfrecord_from_flags, argv)


# --------------------------------------------------------------------------- scripts/estimate_kernel.py, blind_benchmark.py

def estimate_kernel_parser() -> argparse.ArgumentParser:
    """``scripts/estimate_kernel.py``: the blur kernel of each image of a folder, from the image alone."""
    parser = _parser("scripts/estimate_kernel.py",
        description="Estimate the blur kernel of every image in --inputpath from the image alone (KernelGAN, "
                    "mzsr_tf/kernel_estimation.py). Writes SAVEPATH/<image>.mat (key 'kernel', 21x21, the size "
                    "MZSR's kernels have), SAVEPATH/<image>_kernel.png and SAVEPATH/estimation.json (settings, "
                    "seconds per image). SAVEPATH can then be given to scripts/main.py as --kernelpath.",
        epilog="example:\n  python scripts/estimate_kernel.py --inputpath dataset/testsets/benchmark/Input/rk/Set14 "
               "--savepath results/rk_kernels/Set14 --scale 2\n"
               "exit codes: 0 success, 2 bad input (the message names the file), 1 anything else")
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")
    parser.add_argument("--inputpath", required=True, help="folder of LR images (8-bit RGB)")
    parser.add_argument("--savepath", required=True, help="folder for the kernels, figures and estimation.json")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help="the images' super-resolution factor")
    parser.add_argument("--seed", type=int, default=0, help="seed of the estimator's randomness (>= 0)")
    parser.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default=ESTIMATOR_DEFAULT,
                        help="edges (a Gaussian fitted at the edges, < 1 s per image) or kernelgan (KernelGAN)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="KernelGAN's iterations (default 2000, sized for <= 60 s per BSD100 image on 2 CPU cores)")
    return _add_verbose(parser)


def estimator_from_flags(name: str, iterations: Optional[int], option: str):
    """The kernel estimator ``name`` (``blind.make_estimator``) with ``iterations`` if given (a bad value, or
    iterations for the edges estimator, named by ``option``)."""
    from mzsr_tf.blind import make_estimator
    try:
        return make_estimator(name, iterations)
    except ValueError as error:
        raise ConfigError(f"{option} {iterations}: {error}") from None


def estimate_kernel_from_flags(args) -> int:
    def estimate(args) -> int:
        from mzsr_tf.atomic import write_errors_as
        from mzsr_tf.blind import estimate_folder
        estimator = estimator_from_flags(args.estimator, args.iterations, "--iterations")
        with write_errors_as(OutputError):
            record = estimate_folder(args.inputpath, args.savepath, args.scale, estimator, args.seed, log=log.info)
        log.info("%d kernels written to %s (%.1f s per image)", len(record["images"]), args.savepath,
                 record["seconds_per_image"])
        return EXIT_OK
    return run_command(estimate, args)


def estimate_kernel_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/estimate_kernel.py``."""
    return _run_script(estimate_kernel_parser(), estimate_kernel_from_flags, argv,
                       lambda args: args.seed < 0 and f"--seed must be >= 0, got {args.seed}")


def blind_benchmark_parser() -> argparse.ArgumentParser:
    """``scripts/blind_benchmark.py``: MZSR on random-kernel test sets under four kernel assumptions."""
    parser = _parser("scripts/blind_benchmark.py",
        description="The blind benchmark: MZSR (--model 0) on the rk test sets (one random kernel per image, "
                    "make_testsets.py --kernels rk) given the true kernels, the estimated ones (made by "
                    "scripts/estimate_kernel.py into ESTIMATED/<set>/), no kernel (the bicubic fallback) and a "
                    "fixed g^d_2.0. Writes OUT/blind.json, OUT/blind.md and OUT/kernel_errors.png.",
        epilog="example:\n  python scripts/blind_benchmark.py --testsets dataset/testsets/benchmark --sets BSD100 "
               "Set14 --estimated edges=results/rk_edges kernelgan=results/rk_kernelgan --out results/blind\n"
               "exit codes: 0 success, 2 bad input (the message names the file or set), 1 anything else")
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")
    parser.add_argument("--testsets", required=True, help="test-set folder holding Input/rk/<set>/")
    parser.add_argument("--sets", nargs="+", required=True, help="set names, e.g. BSD100 Set14")
    parser.add_argument("--estimated", nargs="+", required=True,
                        help="NAME=ROOT entries: ROOT/<set>/<image>.mat estimates + estimation.json of estimator NAME")
    parser.add_argument("--checkpoint", default=None, help="weights (default: --model 0's checkpoint)")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 10], help="MZSR step counts")
    parser.add_argument("--reuse", default=None, metavar="BLIND_JSON",
                        help="an earlier run's blind.json: its evaluations of the same checkpoint, steps and sets, "
                             "made with the default son grid (and for an estimator, of the same estimates) are "
                             "reused (e.g. to add an estimator without running the other rows again)")
    parser.add_argument("--out", default="results/blind", help="output folder")
    return _add_verbose(parser)


def _named_paths(entries: Sequence[str]) -> Dict[str, str]:
    """``NAME=PATH`` flag values as a dict; an entry without ``=`` is a ``ConfigError``."""
    named = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--estimated {entry}: expected NAME=ROOT, e.g. edges=results/rk_edges")
        if name in named:
            raise ConfigError(f"--estimated {entry}: the name {name} is given twice (also {name}={named[name]}); "
                              "each estimator's rows need a name of their own")
        named[name] = path
    return named


def blind_benchmark_from_flags(args) -> int:
    def benchmark(args) -> int:
        from mzsr_tf.atomic import check_output_folder, write_errors_as
        from mzsr_tf.blind import blind_benchmark, markdown_table, write_blind_results
        from mzsr_tf.evaluate import check_steps
        steps = check_steps(args.steps)
        estimated = _named_paths(args.estimated)
        check_output_folder(args.out, "--out")
        checkpoint = checkpoint_for_preset(args.checkpoint, preset_for_model(0), REPO_ROOT)
        previous = read_json_object(args.reuse, "--reuse") if args.reuse else None
        results = blind_benchmark(args.testsets, split_names(args.sets), checkpoint, estimated, steps,
                                  log=log.info, previous=previous)
        with write_errors_as(OutputError):
            write_blind_results(results, args.out, command=args.command)
        log.info("%s", markdown_table(results))
        return EXIT_OK
    return run_command(benchmark, args)


def blind_benchmark_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/blind_benchmark.py``; the command line is recorded in the results."""
    def check(args) -> Optional[str]:
        args.command = "python scripts/blind_benchmark.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        return None
    return _run_script(blind_benchmark_parser(), blind_benchmark_from_flags, argv, check)


def calibrate_edge_kernel_parser() -> argparse.ArgumentParser:
    """``scripts/calibrate_edge_kernel.py``: fit the edge estimator's gain and offset on training images."""
    parser = _parser("scripts/calibrate_edge_kernel.py",
        description="Fit the edges estimator's calibration (gain, offset; mzsr_tf/edge_kernel.py) on TRAINING images "
                    "degraded by rk-recipe kernels, and report the kernel error on held-out ones. Prints the values "
                    "to put in EdgeKernelConfig.",
        epilog="example:\n  python scripts/calibrate_edge_kernel.py --hr BSD200 --count 120 "
               "--fit 80 --underestimate-share 0.9\nexit codes: 0 success, 2 bad input, 1 anything else")
    parser.add_argument("--hr", required=True, help="folder of HR training images (never a test set)")
    parser.add_argument("--count", type=int, default=120, help="images used (the first, sorted)")
    parser.add_argument("--fit", type=int, default=80, help="of those, how many the fit uses (the rest are held out)")
    parser.add_argument("--underestimate-share", type=float, default=None,
                        help="fit the offset so that the estimated variance is at most the true one on this share of "
                             "the fit pairs (the defaults use 0.9); none: least squares")
    return _add_verbose(parser)


def calibrate_edge_kernel_from_flags(args) -> int:
    def calibrate(args) -> int:
        from mzsr_tf.data.images import list_images
        from mzsr_tf.edge_kernel import calibration_report
        if not 0 < args.fit < args.count:
            raise ConfigError(f"--fit must be between 1 and --count - 1, got {args.fit} of {args.count}")
        if args.underestimate_share is not None and not 0 < args.underestimate_share < 1:
            raise ConfigError(f"--underestimate-share must be in (0, 1), got {args.underestimate_share}")
        found = len(list_images(args.hr, "--hr", error=ConfigError))
        if found <= args.fit:
            raise ConfigError(f"--hr folder {args.hr} holds {found} image(s): --fit {args.fit} needs at least "
                              f"{args.fit + 1} (the fit's and at least one held out)")
        report = calibration_report(args.hr, args.count, args.fit, underestimate_share=args.underestimate_share)
        log.info("%s", json.dumps(report, indent=1))
        return EXIT_OK
    return run_command(calibrate, args)


def calibrate_edge_kernel_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/calibrate_edge_kernel.py``."""
    return _run_script(calibrate_edge_kernel_parser(), calibrate_edge_kernel_from_flags, argv)


# --------------------------------------------------------------------------- scripts/make_testsets.py, evaluate.py

def make_testsets_parser() -> argparse.ArgumentParser:
    """``scripts/make_testsets.py``: the paper's LR inputs, kernels and modcropped GT."""
    parser = _parser("scripts/make_testsets.py",
        description="Make the paper's benchmark test sets: LR inputs, kernel.mat and modcropped GT for "
                    "each kernel. --hr is a folder of images (one set) or a folder of set folders. Writes "
                    "OUT/Input/<kernel>/<set>/*.png, OUT/Input/<kernel>/kernel.mat, OUT/GT/<set>/ (x2), "
                    "OUT/GT_x4/<set>/ (x4) and OUT/testset.json.",
        epilog="example:\n  python scripts/make_testsets.py --hr benchmark "
               "--out dataset/testsets/benchmark --kernels g20 gani --sets Set5,Set14\n"
               "kernels: the names of mzsr_tf.testsets.PAPER_KERNELS (g02 g20 gani b13 g20x4), and rk: one\n"
               "  random kernel per image, saved beside it as <image>.mat (blind benchmark; README, 'Test sets')\n"
               "exit codes: 0 success, 2 bad input (the message names the file or kernel), 1 anything else")
    parser.add_argument("--hr", required=True, help="folder of HR images, or of folders of HR images (sets)")
    parser.add_argument("--out", required=True, help="test-set folder to write, e.g. dataset/testsets/benchmark")
    parser.add_argument("--kernels", nargs="+", default=None,
                        help="kernel names (default: the paper's five; rk only when named)")
    parser.add_argument("--sets", nargs="+", default=None, help="set names under --hr (default: all)")
    return _add_verbose(parser)


def make_testsets_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/make_testsets.py``."""
    return _run_script(make_testsets_parser(), make_testsets_from_flags, argv)


def evaluate_parser() -> argparse.ArgumentParser:
    """``scripts/evaluate.py``: the benchmark table over test sets x kernels x steps, and figures."""
    parser = _parser("scripts/evaluate.py",
        description="Benchmark table: MZSR after n steps beside bicubic and ZSSR-like baselines, on paper "
                    "test sets. Writes OUT/results.json, OUT/results.csv, OUT/results.md and OUT/figures/*.png.",
        epilog="example:\n  python scripts/evaluate.py --checkpoint checkpoints/Model/Directx2 "
               "--testsets dataset/testsets/benchmark --steps 0 1 10 --baselines bicubic --kernels g20 "
               "--sets Set5,BSD100,Set14 --out results/eval_g20\n"
               "--checkpoint takes a TF1/TF2 prefix or folder for every preset, or PRESET=PATH entries ("
               + ", ".join(PRESETS) + "); default: the preset's checkpoint in checkpoints/.\n"
               "exit codes: 0 success, 2 bad input (the message names the file, set or kernel), 1 anything else")
    parser.add_argument("--checkpoint", nargs="+", default=None, help="PATH or PRESET=PATH entries")
    parser.add_argument("--testsets", required=True, help="test-set folder made by scripts/make_testsets.py")
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 1, 10],
                        help="MZSR step counts (0 = before adaptation)")
    parser.add_argument("--baselines", nargs="*", default=["bicubic"],
                        help="comma/space separated: bicubic, zssr (none: give the flag without values)")
    parser.add_argument("--zssr-steps", type=int, default=2000, help="step budget of the zssr baseline")
    parser.add_argument("--kernels", nargs="+", default=None, help="kernel names (default: all in the test set)")
    parser.add_argument("--sets", nargs="+", default=None, help="set names (default: all in the test set)")
    _add_tiling_flags(parser)
    parser.add_argument("--son-grid", choices=SON_GRIDS, default=DEFAULT_SON_GRID,
                        help="exact (default): MZSR's son of each input cropped to a multiple of the scale (beyond "
                             "the reference); reference: of the whole input, as the reference (rows labelled); as "
                             "scripts/main.py --son-grid")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="MZSR columns as the self-ensemble of eight flips/rotations, each adapted (its own "
                             "table: never mixed with plain MZSR)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="meta-test every kernel with this preset's learning-rate schedule at the kernel's "
                             "own scale (e.g. multiscale on g20 and g20x4; default: the preset each kernel names)")
    parser.add_argument("--limit", type=int, default=0,
                        help="evaluate the first N images (by name) of each set only, e.g. a validation subset "
                             "(default 0: all)")
    parser.add_argument("--figure-images", nargs="+", default=None,
                        help="image names for the crop figures (default: the first image of each set)")
    parser.add_argument("--out", default="results/evaluation", help="output folder")
    return _add_verbose(parser)


def evaluate_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/evaluate.py``; the command line is recorded in the results."""
    def check(args) -> Optional[str]:
        args.command = "python scripts/evaluate.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        return args.zssr_steps < 1 and f"--zssr-steps must be a positive integer, got {args.zssr_steps}"
    return _run_script(evaluate_parser(), evaluate_from_flags, argv, check)


# --------------------------------------------------------------------------- scripts/learning_curve.py

def learning_curve_parser() -> argparse.ArgumentParser:
    """``scripts/learning_curve.py``: meta-test every checkpoint of a run and plot PSNR vs iteration."""
    parser = _parser("scripts/learning_curve.py",
        description="Meta-test every checkpoint of a training run on image folders and plot PSNR vs "
                    "meta-iteration. A run started from a checkpoint of an earlier run (a later training "
                    "phase) is drawn after it: --before EARLIER.json@STEP (repeatable, in training order) "
                    "takes an earlier run's curve JSON up to the step the next phase started from; the "
                    "figure and --chain-out show the joined curve, --out keeps this run's rows.",
        epilog="example:\n  python scripts/learning_curve.py --run runs/direct_x2/Model2 "
               "--folder Set5=dataset/testsets/benchmark/Input/g20/Set5,dataset/testsets/benchmark/GT/Set5,"
               "dataset/testsets/benchmark/Input/g20/kernel.mat --out runs/direct_x2/curve.json "
               "--png runs/direct_x2/curve.png --every 2 --limit 10 --model 0\n"
               "exit codes: 0 success, 2 bad input, 1 anything else")
    parser.add_argument("--run", required=True, help="folder of ckpt-N checkpoints")
    parser.add_argument("--folder", action="append", required=True,
                        help="NAME=LR_DIR,GT_DIR,KERNEL.mat (repeatable)")
    parser.add_argument("--model", type=int, choices=MODEL_CHOICES, default=0,
                        help=f"preset (test-time schedule, scale): {MODEL_HELP}")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10], help="adaptation step counts")
    parser.add_argument("--every", type=int, default=1, help="score every N-th checkpoint (and the last)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N images of each folder")
    parser.add_argument("--out", required=True,
                        help="JSON of rows; its rows are reused when run, folders, steps, --limit and "
                             "--model are the same, else scored again; another run's JSON is refused")
    parser.add_argument("--png", default=None, help="figure path")
    parser.add_argument("--before", action="append", default=[], metavar="JSON@STEP",
                        help="an earlier phase's curve JSON and the step the next phase started from")
    parser.add_argument("--chain-out", default=None, help="JSON of the joined curve (with --before)")
    return _add_verbose(parser)


def _read_phase(spec: str):
    """``JSON@STEP`` -> (rows of that curve JSON, STEP); ValueError naming the file when unusable."""
    path, _, step = spec.rpartition("@")
    if not path or not step.isdigit():
        raise ValueError(f"--before {spec!r} is not CURVE.json@STEP")
    from mzsr_tf.curves import read_curve
    saved = read_curve(path)
    if saved is None:
        raise ValueError(f"{path}: not a learning-curve JSON (no such file)")
    return saved["rows"], int(step)


def learning_curve_from_flags(args) -> int:
    """Score the run's checkpoints, join earlier phases, write the JSON and the figure."""
    def curve(args) -> int:
        from mzsr_tf import curves, plots
        from mzsr_tf.atomic import check_output_file, write_errors_as, write_json
        for option, path in (("--out", args.out), ("--png", args.png), ("--chain-out", args.chain_out)):
            if path:
                check_output_file(path, option)  # before any checkpoint is scored
        folders = {}
        for spec in args.folder:
            name, _, paths = spec.partition("=")
            parts = paths.split(",")
            if not name or len(parts) != 3:
                raise ValueError(f"--folder {spec!r} is not NAME=LR_DIR,GT_DIR,KERNEL.mat")
            folders[name] = tuple(parts)
        config = preset_for_model(args.model).adaptation_config()
        earlier = [_read_phase(spec) for spec in args.before]
        with write_errors_as(OutputError):
            rows = curves.learning_curve(args.run, folders, config, args.steps, args.every, args.limit, args.out)
            if earlier:
                rows = curves.chain(earlier + [(rows, None)])
                if args.chain_out:
                    write_json(args.chain_out, {"phases": args.before + [args.out], "steps": args.steps,
                                                "rows": rows}, indent=1)
                    print(f"joined curve: {args.chain_out}")
            if args.png:
                plots.plot_learning_curve(rows, args.png)
                print(f"figure: {args.png}")
        return EXIT_OK
    return run_command(curve, args)


def learning_curve_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/learning_curve.py``."""
    return _run_script(learning_curve_parser(), learning_curve_from_flags, argv)


# --------------------------------------------------------------------------- scripts/convert_checkpoint.py

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


def convert_checkpoint_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/convert_checkpoint.py``."""
    return _run_script(convert_checkpoint_parser(), convert_checkpoint_from_flags, argv,
                       lambda args: not (args.weights or args.tf2_checkpoint or args.saved_model) and
                       "nothing to write: give at least one of --weights, --tf2-checkpoint, --saved-model")


# --------------------------------------------------------------------------- scripts/make_demo.py

DEMO_CROPS = {
    "chelsea": ("chelsea", 20, 90, 240, 320),
    "coffee": ("coffee", 40, 140, 240, 320),
    "astronaut": ("astronaut", 0, 128, 256, 256),
}
"""Demo image name -> (``skimage.data`` function, top, left, height, width) of its GT crop."""
REAL_PHOTOS = ("rocket", "coffee", "chelsea")
"""``skimage.data`` photographs used whole as real low-resolution inputs (public domain / CC0)."""


def make_demo_parser() -> argparse.ArgumentParser:
    """``scripts/make_demo.py``: regenerate dataset/demo/ from scikit-image's public-domain samples."""
    parser = _parser(
        "scripts/make_demo.py",
        description="Regenerate dataset/demo/: LR inputs, GT and kernel.mat from the CC0 / public-domain sample "
                    "photographs scikit-image ships (skimage.data: chelsea, coffee, astronaut; see "
                    "dataset/demo/README.md). Each GT is a crop of a photograph; its LR input is made by "
                    "mzsr_tf.degradation with the isotropic Gaussian of covariance 2.0 (21x21) and direct x2 "
                    "subsampling (the paper's g^d_2.0). scikit-image is needed only here.",
        epilog="example:\n  pip install scikit-image && python scripts/make_demo.py --out dataset/demo\n"
               "exit codes: 0 success, 2 scikit-image missing or bad output folder, 1 anything else")
    parser.add_argument("--out", default=DEMO_DIR, help="folder to write Input/, GT/ and kernel.mat into")
    parser.add_argument("--real-photos", default=None, metavar="DIR",
                        help="instead, write the real-photograph examples (rocket, coffee, chelsea: whole, at their "
                             "native resolution, no GT, no kernel) into DIR, for --estimate-kernel")
    return _add_verbose(parser)


def make_demo_from_flags(args) -> int:
    """Write the demo's kernel, GT crops and LR inputs."""
    def make(args) -> int:
        try:
            import skimage.data
        except ImportError:
            raise ConfigError("scripts/make_demo.py needs scikit-image (pip install scikit-image)") from None
        from mzsr_tf import atomic, degradation, kernels, metrics
        if args.real_photos:
            for name in REAL_PHOTOS:
                photo = getattr(skimage.data, name)()[..., :3]
                atomic.write_png(os.path.join(args.real_photos, f"{name}.png"), photo)
                log.info("%s: %dx%d -> %s", name, photo.shape[0], photo.shape[1], args.real_photos)
            return EXIT_OK
        kernel = kernels.isotropic_gaussian(21, 2.0)
        for sub in ("Input", "GT"):
            os.makedirs(os.path.join(args.out, sub), exist_ok=True)
        kernels.save_kernel(os.path.join(args.out, "kernel.mat"), kernel)
        for name, (function, top, left, height, width) in DEMO_CROPS.items():
            gt = getattr(skimage.data, function)()[top:top + height, left:left + width, :3]
            lr = degradation.degrade(gt.astype(float) / 255.0, kernel, 2.0, ds_method="direct")
            for sub, image in (("GT", gt), ("Input", metrics.to_uint8(lr))):
                atomic.write_png(os.path.join(args.out, sub, f"{name}.png"), image)
            log.info("%s: GT %dx%d, LR %dx%d", name, gt.shape[0], gt.shape[1], lr.shape[0], lr.shape[1])
        return EXIT_OK
    return run_command(make, args)


def make_demo_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/make_demo.py``."""
    return _run_script(make_demo_parser(), make_demo_from_flags, argv)
