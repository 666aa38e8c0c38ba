"""Outputs written atomically or not at all, and output paths checked before the work starts.

Every file the tools write (SR images, ``results.json``, evaluation tables and figures, record files
and their sidecar, learning curves, configurations) goes through :func:`atomic_path` or
:func:`atomic_paths`: it is written under a temporary name in its own folder
(``.<name>.tmp-<pid>-<token>``) and renamed onto its name with ``os.replace`` once complete, so a
reader sees the old file or the new one, never a part.  On any failure the temporary file is removed;
a failed write (a full disk, a read-only folder found late) becomes a :class:`WriteError` naming the
file, one line.  The command layer reports it as ``cli.OutputError`` (:func:`write_errors_as`).

:func:`check_output_folder` and :func:`check_output_file` are the checks a tool runs before its work:
the path must be (or be creatable as) a folder, resp. a file in one, in which a file can be created
(a probe file is created and removed; missing folders are not created yet).  A bad path is an
:class:`OutputPathError` (a ``ValueError``: bad input).

Only the standard library is imported here (``mzsr_tf.config`` uses this module).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import Any, Iterator, List, Sequence, Tuple, Type, Union

PathLike = Union[str, os.PathLike]


class WriteError(OSError):
    """An output file could not be written; the message names it (``cannot write PATH: reason``)."""


class OutputPathError(ValueError):
    """An output path that cannot be used (a file where a folder is needed, a read-only place)."""


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def write_error(path: PathLike, error: BaseException) -> WriteError:
    """The :class:`WriteError` of ``error`` (raised while writing ``path``), naming ``path``."""
    if isinstance(error, WriteError):
        return error
    return WriteError(f"cannot write {os.fspath(path)}: {_reason(error)}")


def temporary_name(path: PathLike) -> str:
    """A fresh temporary path beside ``path``: same folder, hidden, unique to this process and call."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


_IN_FLIGHT: set = set()
"""The temporary files of the writes under way (``atomic_paths``), for ``remove_temporaries``."""


def remove_temporaries() -> None:
    """Remove the temporary files of the writes under way: what a process about to end at once (a signal,
    ``os._exit``) calls, so that it leaves only complete files.  A write that completes meanwhile has
    renamed its file onto its name, which stays."""
    for temporary in list(_IN_FLIGHT):
        _remove(temporary)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[PathLike]) -> Iterator[List[str]]:
    """Temporary paths for several files that appear together: renamed in order after the block,
    all removed when it fails.

    The block writes each ``temporaries[i]`` completely (folders are created here); nothing is
    renamed unless the whole block succeeds, so e.g. record shards and their sidecar appear as a
    set.  Errors pass through unchanged (the caller names the file it was writing, ``write_error``);
    an ``OSError`` of the renames themselves becomes a :class:`WriteError`.
    """
    finals = [os.fspath(path) for path in paths]
    temporaries = [temporary_name(path) for path in finals]
    _IN_FLIGHT.update(temporaries)
    try:
        for path in finals:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            except OSError as error:
                raise write_error(path, error) from None
        yield temporaries
        for temporary, path in zip(temporaries, finals):
            if not os.path.exists(temporary):
                raise WriteError(f"cannot write {path}: nothing was written to its temporary file")
            try:
                os.replace(temporary, path)
            except OSError as error:
                raise write_error(path, error) from None
    finally:
        for temporary in temporaries:
            if os.path.lexists(temporary):
                _remove(temporary)
            _IN_FLIGHT.discard(temporary)


@contextlib.contextmanager
def atomic_path(path: PathLike, errors: Tuple[Type[BaseException], ...] = (OSError,)) -> Iterator[str]:
    """A temporary path to write ``path`` to; renamed onto ``path`` after the block, removed on failure.

    An error of a class in ``errors`` raised by the block (``OSError``: a full disk, a read-only
    folder) becomes a :class:`WriteError` naming ``path``; other errors pass through unchanged.

    Example::

        with atomic_path("out/results.json") as temporary:
            with open(temporary, "w") as f:
                json.dump(results, f)
    """
    try:
        with atomic_paths([path]) as (temporary,):
            yield temporary
    except errors as error:
        raise write_error(path, error) from None


def write_bytes(path: PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            f.write(data)
    return os.fspath(path)


def write_text(path: PathLike, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def write_png(path: PathLike, image) -> str:
    """Write a uint8 ``[H, W, C]`` image as PNG atomically (encoded in memory first); returns ``path``."""
    import imageio.v3 as iio
    return write_bytes(path, iio.imwrite("<bytes>", image, extension=".png"))


def write_json(path: PathLike, data: Any, indent: int = 2) -> str:
    """Write ``data`` as JSON to ``path`` atomically; returns ``path``.

    The JSON text is made before anything is written, so data that cannot be serialised leaves the
    old file as it was.
    """
    return write_text(path, json.dumps(data, indent=indent))


@contextlib.contextmanager
def write_errors_as(error_class: Type[Exception]) -> Iterator[None]:
    """Re-raise a :class:`WriteError` of the block as ``error_class`` with the same one-line message."""
    try:
        yield
    except WriteError as error:
        raise error_class(str(error)) from None


# --------------------------------------------------------------------------- checks before the work

def _probe(folder: str, label: str) -> None:
    """Create and remove a file in the existing ``folder``; an :class:`OutputPathError` if that fails."""
    probe = os.path.join(folder, f".write-probe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise OutputPathError(f"{label}: cannot write in {folder} ({_reason(error)})") from None
    _remove(probe)


def _check_folder(folder: str, label: str, subject: str) -> None:
    """``folder`` is a folder, or can be created as one: its nearest existing ancestor is a folder
    that takes a new file.  ``subject`` is the path ``label`` names (the folder, or a file in it)."""
    # walked as the system walks it, not normalised: 'out/missing/../base' needs out/missing
    path = os.path.join(os.getcwd(), os.fspath(folder))
    existing = path
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    below = path[len(existing):].strip(os.sep).split(os.sep)  # the literal components still to create
    if os.pardir in below:
        missing = os.path.join(existing, *below[:below.index(os.pardir)])
        raise OutputPathError(f"{label}: {os.path.abspath(missing)} does not exist, so the '..' after it "
                              "cannot be followed")
    if not os.path.isdir(existing):
        if os.path.abspath(existing) == os.path.abspath(subject):
            raise OutputPathError(f"{label}: is a file, not a folder")
        raise OutputPathError(f"{label}: {os.path.abspath(existing)} is a file, not a folder")
    _probe(existing, label)


def check_output_folder(folder: PathLike, what: str = "output folder") -> str:
    """Check, before any work, that files can be written in ``folder``; returns ``folder``.

    ``folder`` may not exist yet (it is created when the first file is written) but must not be a
    file or lie under one, and the folder (or its nearest existing ancestor) must take a new file.
    ``what`` names the path's role or flag in the :class:`OutputPathError` (``"--savepath"``).
    """
    folder = os.fspath(folder)
    _check_folder(folder, f"{what} {folder}", folder)
    return folder


def check_output_file(path: PathLike, what: str = "output file") -> str:
    """Check, before any work, that the file ``path`` can be written (atomically); returns ``path``.

    ``path`` must not be a folder, and its folder must pass :func:`check_output_folder`.
    """
    path = os.fspath(path)
    label = f"{what} {path}"
    if os.path.isdir(path):
        raise OutputPathError(f"{label}: is a folder, not a file")
    _check_folder(os.path.dirname(os.path.abspath(path)), label, path)
    return path
