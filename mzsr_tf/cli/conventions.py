"""The conventions every command follows: parsing before TensorFlow, exit codes, one-line errors, logging,
signals.

Each command (``mzsr_tf.cli.<command>``) has a parser (``*_parser``, its choices taken from ``mzsr_tf.config``),
and a ``*_from_flags(args)`` function that does its work and returns the exit code through ``run_command``, the
one place that maps errors to exit codes (``exit_code_of``):

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
import logging
import os
import re
import signal
import socket
import sys
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

from mzsr_tf.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""Where relative preset paths (``checkpoints/...``) are looked up."""

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


# --------------------------------------------------------------------------- parsers

_prog_override: Optional[str] = None


@contextlib.contextmanager
def prog_name(prog: str) -> Iterator[None]:
    """Within the block, the parsers made by ``_parser`` are named ``prog`` (``mzsr main``) instead of their
    script (``scripts/main.py``)."""
    global _prog_override
    previous, _prog_override = _prog_override, prog
    try:
        yield
    finally:
        _prog_override = previous


def _parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A script's parser: its description, and an epilog of examples and exit codes kept as written."""
    return argparse.ArgumentParser(prog=_prog_override or prog, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_verbose(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's start-up messages on stderr")
    return parser


def _add_gpu(parser) -> None:
    """``--gpu``, read by ``prepare_environment`` before TensorFlow is imported."""
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")


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


def split_names(values) -> Optional[list]:
    """Flag values given as ``a,b c`` (commas and/or spaces) as a list of names; None stays None."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


# --------------------------------------------------------------------------- signals

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
