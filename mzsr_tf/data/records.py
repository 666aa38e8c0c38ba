"""Patch record files: TFRecord (the reference's schema) and HDF5, writers, readers and checks.

TFRecord schema (byte-compatible with github ``JWSoh/MainSR``): one ``tf.train.Example`` per patch with

- ``label``: ``bytes``, the raw ``uint8`` HR patch ``[H, W, C]`` in C order (``ndarray.tobytes()``);
- ``image``: ``bytes``, the raw ``uint8`` LR patch ``[H/s, W/s, C]`` (pretraining records only).

No shape is stored in a record; readers are told the shape (or read it from the JSON sidecar that
``mzsr_tf.data.build`` writes beside the records) and reject records of the wrong size.

HDF5 layout: one ``uint8`` dataset per feature, ``label`` ``[N, H, W, C]`` (and ``image``), chunked
(about 128 KiB per chunk) with Fletcher-32 checksums so a damaged file is detected, never silently read.

Sharding: ``OUT.tfrecord`` with ``num_shards=3`` becomes ``OUT-00000-of-00003.tfrecord`` ... ; readers
accept one file, a list, a glob pattern, a folder, or the unsharded name (resolved through the
sidecar or the shard pattern), and give the records in file order, as written.

A truncated or corrupt file, a wrong schema or a record of the wrong size is a ``RecordError``
naming the file.
"""
from __future__ import annotations

import dataclasses
import errno
import glob
import json
import os
import re
import shutil
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import tensorflow as tf

from mzsr_tf import atomic
from mzsr_tf.config import read_json_object

LABEL_KEY = "label"
IMAGE_KEY = "image"
FORMATS = ("tfrecord", "hdf5")
TFRECORD_EXTENSIONS = (".tfrecord", ".tfrecords")
HDF5_EXTENSIONS = (".h5", ".hdf5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_READ_BLOCK = 1024
_HDF5_CHUNK_BYTES = 1 << 17
_HDF5_OVERHEAD = 1.02  # checksums and chunk index, relative to the data (well below 1 % for 128 KiB chunks)
_HDF5_METADATA_BYTES = 1 << 20  # and a margin for the file's own metadata (about 60 kB measured)
_VALIDATE_BATCH = 4096

PathLike = Union[str, os.PathLike]
PathSpec = Union[PathLike, Sequence[PathLike]]
Shapes = Mapping[str, Tuple[int, ...]]


class RecordError(ValueError):
    """A record file that is missing, truncated, corrupt, or not in the expected layout."""


# --------------------------------------------------------------------------- names

def extension_for(fmt: str) -> str:
    """The file extension written for ``fmt`` (``'.tfrecord'`` or ``'.h5'``)."""
    check_format(fmt)
    return ".tfrecord" if fmt == "tfrecord" else ".h5"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"record format must be one of {FORMATS}, got {fmt!r}")
    return fmt


def format_of(path: PathLike) -> str:
    """``'hdf5'`` or ``'tfrecord'``: by extension, else by the HDF5 signature of an existing file."""
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(HDF5_EXTENSIONS):
        return "hdf5"
    if lower.endswith(TFRECORD_EXTENSIONS):
        return "tfrecord"
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return "hdf5"
    return "tfrecord"


def shard_paths(path: PathLike, num_shards: int) -> List[str]:
    """File names of ``num_shards`` shards of ``path`` (``[path]`` itself when there is one)."""
    path = os.fspath(path)
    if num_shards < 1:
        raise ValueError(f"number of shards must be >= 1, got {num_shards}")
    if num_shards == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}-{i:05d}-of-{num_shards:05d}{ext}" for i in range(num_shards)]


def sidecar_path(path: PathLike) -> str:
    """The JSON sidecar beside the records written as ``path``: ``path + '.json'``."""
    return os.fspath(path) + ".json"


def read_sidecar(path: PathLike) -> Optional[dict]:
    """The sidecar of ``path`` as a dict, or ``None`` when there is none."""
    return read_json_object(sidecar_path(path), "record metadata (the sidecar)", RecordError, missing_ok=True)


def resolve_record_files(path: PathSpec) -> List[str]:
    """The record files that ``path`` names, in order.

    ``path`` may be a file, a list of paths, a glob pattern, a folder (its ``.tfrecord``/``.h5``
    files), or the name the writer was given when it wrote shards (found through the sidecar or the
    ``-NNNNN-of-NNNNN`` pattern).  Nothing found is a ``FileNotFoundError`` naming ``path``.
    """
    if not isinstance(path, (str, os.PathLike)):
        files = [f for item in path for f in resolve_record_files(item)]
        if not files:
            raise FileNotFoundError("no record files given")
        return files
    path = os.fspath(path)
    if glob.has_magic(path):
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f))
        if not files:
            raise FileNotFoundError(f"{path}: no record file matches this pattern")
        return files
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.lower().endswith(TFRECORD_EXTENSIONS + HDF5_EXTENSIONS))
        if not files:
            raise FileNotFoundError(f"{path}: folder holds no .tfrecord or .h5 files")
        return files
    sidecar = read_sidecar(path)
    if sidecar is not None and sidecar.get("files"):
        folder = os.path.dirname(path)
        return [os.path.join(folder, entry["file"]) for entry in sidecar["files"]]
    stem, ext = os.path.splitext(path)
    pattern = f"{stem}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]{ext}"
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{path}: record file not found (nor shards {stem}-NNNNN-of-NNNNN{ext})")
    return files


# --------------------------------------------------------------------------- writing

def serialize_example(features: Mapping[str, np.ndarray]) -> bytes:
    """One ``tf.train.Example`` with each array as raw ``uint8`` bytes (the reference's schema)."""
    feature = {}
    for key, array in features.items():
        if array.dtype != np.uint8:
            raise ValueError(f"feature {key!r} must be uint8, got {array.dtype}")
        feature[key] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(array).tobytes()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One written file and the number of records in it."""

    file: str
    count: int


def write_records(path: PathLike, batches: Iterable[Mapping[str, np.ndarray]], total: int,
                  fmt: str = "tfrecord", num_shards: int = 1,
                  attrs: Optional[Mapping[str, object]] = None,
                  sidecar: Optional[Callable[[List[ShardInfo]], Mapping]] = None) -> List[ShardInfo]:
    """Write ``total`` records, given as consecutive batches, to ``path`` (or its shards).

    ``batches`` yields dicts of ``uint8`` arrays ``{key: [n, ...]}`` (the same keys every time);
    shard ``s`` gets records ``[s * total // S, (s + 1) * total // S)``, so reading the shards in
    order gives the records in the order written.  ``attrs`` are stored as HDF5 attributes (JSON).
    ``sidecar``, given the shards, returns the JSON written to ``sidecar_path(path)``.

    All or nothing (``mzsr_tf.atomic.atomic_paths``): the shards and the sidecar are written under
    temporary names and renamed only when every one is complete, so a failure (a full disk: an
    ``atomic.WriteError`` naming the file) leaves no partial record file and the old files, if any,
    as they were.
    """
    check_format(fmt)
    if total < 1:
        raise ValueError("nothing to write: no patches")
    files = shard_paths(path, num_shards)
    if num_shards > total:
        raise ValueError(f"{num_shards} shards for only {total} records")
    bounds = [s * total // num_shards for s in range(num_shards + 1)]
    shards = [ShardInfo(f, bounds[s + 1] - bounds[s]) for s, f in enumerate(files)]
    outputs = files + ([sidecar_path(path)] if sidecar is not None else [])
    with atomic.atomic_paths(outputs) as temporaries:
        writer = _TFRecordShardWriter() if fmt == "tfrecord" else _HDF5ShardWriter(attrs)
        shard, written_in_shard, written = 0, 0, 0
        try:
            for batch in batches:
                n = len(next(iter(batch.values())))
                start = 0
                while start < n:
                    if shard == num_shards:
                        raise ValueError(f"more than the announced {total} records were given")
                    if written_in_shard == 0:
                        writer.open(temporaries[shard], bounds[shard + 1] - bounds[shard], batch)
                    take = min(n - start, bounds[shard + 1] - bounds[shard] - written_in_shard)
                    writer.write({k: v[start:start + take] for k, v in batch.items()})
                    start += take
                    written_in_shard += take
                    written += take
                    if written_in_shard == bounds[shard + 1] - bounds[shard]:
                        writer.close()
                        shard, written_in_shard = shard + 1, 0
            writer.close()
        except (OSError, tf.errors.OpError) as error:
            raise atomic.write_error(files[min(shard, num_shards - 1)], error) from None
        finally:
            writer.abandon()
        if written != total:
            raise ValueError(f"{written} records were given, {total} were announced")
        if sidecar is not None:
            try:
                with open(temporaries[-1], "w") as f:
                    json.dump(sidecar(shards), f, indent=2)
            except OSError as error:
                raise atomic.write_error(outputs[-1], error) from None
    return shards


class _ShardWriter:
    """What both shard writers share: ``_handle`` is the open file (or ``None``), closed once."""

    _handle = None

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def abandon(self) -> None:
        """Close after a failure, ignoring errors (the file is removed anyway)."""
        try:
            self.close()
        except (OSError, tf.errors.OpError):
            pass


class _TFRecordShardWriter(_ShardWriter):

    def open(self, file: str, count: int, example_batch: Mapping[str, np.ndarray]) -> None:
        self._handle = tf.io.TFRecordWriter(file)

    def write(self, batch: Mapping[str, np.ndarray]) -> None:
        keys = list(batch)
        for i in range(len(batch[keys[0]])):
            self._handle.write(serialize_example({k: batch[k][i] for k in keys}))



def _check_free_space(file: str, data_bytes: int) -> None:
    """An ENOSPC ``OSError`` unless the disk of ``file`` has room for ``data_bytes`` and HDF5's overhead.

    HDF5 does not survive running out of space (its library crashes the process at exit after a
    failed write), so the room an HDF5 shard needs is checked before it is started.
    """
    needed = int(data_bytes * _HDF5_OVERHEAD) + _HDF5_METADATA_BYTES
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(file))).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the HDF5 file needs about "
                                    f"{needed / 1e6:.1f} MB, {free / 1e6:.1f} MB are free)")


class _HDF5ShardWriter(_ShardWriter):
    def __init__(self, attrs: Optional[Mapping[str, object]]):
        self._attrs = dict(attrs or {})
        self._position = 0

    def open(self, file: str, count: int, example_batch: Mapping[str, np.ndarray]) -> None:
        _check_free_space(file, count * sum(int(np.prod(a.shape[1:])) for a in example_batch.values()))
        self._handle = h5py.File(file, "w")
        self._position = 0
        for key, array in example_batch.items():
            if array.dtype != np.uint8:
                raise ValueError(f"feature {key!r} must be uint8, got {array.dtype}")
            shape = (count,) + array.shape[1:]
            rows = max(1, min(count, _HDF5_CHUNK_BYTES // max(1, int(np.prod(array.shape[1:])))))
            self._handle.create_dataset(key, shape=shape, dtype=np.uint8,
                                      chunks=(rows,) + array.shape[1:], fletcher32=True)
        for name, value in self._attrs.items():
            self._handle.attrs[name] = json.dumps(value)

    def write(self, batch: Mapping[str, np.ndarray]) -> None:
        n = len(next(iter(batch.values())))
        for key, array in batch.items():
            self._handle[key][self._position:self._position + n] = array
        self._position += n



# --------------------------------------------------------------------------- checking

@dataclasses.dataclass(frozen=True)
class RecordSet:
    """Record files that passed ``inspect_records``: their format, shapes and record counts."""

    files: Tuple[str, ...]
    format: str
    shapes: Dict[str, Tuple[int, ...]]
    counts: Tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def _normalise_shapes(shapes: Shapes) -> Dict[str, Tuple[int, ...]]:
    out = {}
    for key, shape in shapes.items():
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape of {key!r} must be (height, width, channels), got {shape}")
        out[key] = shape
    return out


def shapes_from_metadata(path: PathSpec, keys: Sequence[str]) -> Dict[str, Tuple[int, ...]]:
    """Patch shapes of ``keys`` from the sidecar of ``path`` or, for HDF5, from its datasets."""
    if isinstance(path, (str, os.PathLike)):
        sidecar = read_sidecar(path)
        if sidecar is not None and all(k in sidecar.get("shapes", {}) for k in keys):
            return {k: tuple(sidecar["shapes"][k]) for k in keys}
    files = resolve_record_files(path)
    first = files[0]
    if format_of(first) == "hdf5":
        with _open_hdf5(first) as f:
            _check_hdf5_keys(f, first, keys)
            return {k: tuple(f[k].shape[1:]) for k in keys}
    raise ValueError(f"{first}: a TFRecord does not store its patch shape and no sidecar "
                     f"({sidecar_path(path) if isinstance(path, (str, os.PathLike)) else 'JSON'}) "
                     f"says it; pass the patch shape, e.g. (64, 64, 3)")


def inspect_records(path: PathSpec, shapes: Shapes, fmt: Optional[str] = None,
                    validate: bool = True) -> RecordSet:
    """Resolve ``path`` and check its files hold records with ``shapes`` (``{key: (H, W, C)}``).

    With ``validate`` every file is read once: a truncated or corrupt file, a missing feature, a
    record whose byte size is not ``H * W * C``, an empty file, or a count that disagrees with the
    sidecar is a ``RecordError`` naming the file.  Without it only HDF5 metadata is checked and
    TFRecord counts are unknown (``-1``).
    """
    files = resolve_record_files(path)
    shapes = _normalise_shapes(shapes)
    fmt = check_format(fmt) if fmt is not None else format_of(files[0])
    for file in files:
        if not os.path.isfile(file):
            raise RecordError(f"{file}: record file does not exist")
        if format_of(file) != fmt and file.lower().endswith(TFRECORD_EXTENSIONS + HDF5_EXTENSIONS):
            raise RecordError(f"{file}: is a {format_of(file)} file, expected {fmt}")
    if fmt == "tfrecord":
        counts = [_check_tfrecord(f, shapes) if validate else -1 for f in files]
    else:
        counts = [_check_hdf5(f, shapes, validate) for f in files]
    if validate and isinstance(path, (str, os.PathLike)):
        _check_sidecar_counts(path, files, counts)
    return RecordSet(tuple(files), fmt, shapes, tuple(counts))


def _short(exc: Exception) -> str:
    """The informative part of a TensorFlow error message."""
    message = getattr(exc, "message", None) or str(exc)
    feature = re.search(r"Feature: .*? could not be found", message)
    if feature:
        return feature.group(0)
    message = message.split("[Op:")[0]
    if "}}" in message:
        message = message.split("}}", 1)[1]
    return " ".join(message.split())


def _check_tfrecord(file: str, shapes: Dict[str, Tuple[int, ...]]) -> int:
    features = {k: tf.io.FixedLenFeature([], tf.string) for k in shapes}
    expected = {k: int(np.prod(s)) for k, s in shapes.items()}

    def byte_sizes(serialized):
        parsed = tf.io.parse_example(serialized, features)
        return {k: tf.strings.length(v) for k, v in parsed.items()}

    dataset = (tf.data.TFRecordDataset(file, buffer_size=1 << 22)
               .batch(_VALIDATE_BATCH).map(byte_sizes))
    count = 0
    try:
        for sizes in dataset:
            for key, size in sizes.items():
                size = size.numpy()
                bad = np.nonzero(size != expected[key])[0]
                if len(bad):
                    raise RecordError(
                        f"{file}: record {count + bad[0]} has a {key!r} of {size[bad[0]]} bytes, "
                        f"expected {'x'.join(map(str, shapes[key]))} = {expected[key]} uint8 values")
            count += len(size)
    except tf.errors.DataLossError as exc:
        raise RecordError(f"{file}: truncated or corrupt TFRecord file ({_short(exc)})") from None
    except tf.errors.InvalidArgumentError as exc:
        raise RecordError(f"{file}: records are not tf.train.Examples with bytes features "
                          f"{sorted(shapes)} ({_short(exc)})") from None
    if count == 0:
        raise RecordError(f"{file}: contains no records")
    return count


def _open_hdf5(file: str) -> h5py.File:
    try:
        return h5py.File(file, "r")
    except OSError as exc:
        raise RecordError(f"{file}: not a readable HDF5 file ({exc})") from None


def _check_hdf5_keys(handle: h5py.File, file: str, keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in handle]
    if missing:
        raise RecordError(f"{file}: HDF5 file has no dataset {missing[0]!r}; it holds "
                          f"{sorted(handle.keys()) or 'nothing'}")


def _check_hdf5(file: str, shapes: Dict[str, Tuple[int, ...]], read_all: bool) -> int:
    with _open_hdf5(file) as handle:
        _check_hdf5_keys(handle, file, shapes)
        counts = set()
        for key, shape in shapes.items():
            data = handle[key]
            if data.dtype != np.uint8 or tuple(data.shape[1:]) != shape:
                raise RecordError(f"{file}: dataset {key!r} is {data.dtype} {data.shape}, "
                                  f"expected uint8 [N, {', '.join(map(str, shape))}]")
            counts.add(data.shape[0])
        if len(counts) != 1:
            raise RecordError(f"{file}: datasets {sorted(shapes)} have different lengths {counts}")
        count = counts.pop()
        if count == 0:
            raise RecordError(f"{file}: contains no records")
        if read_all:
            for key in shapes:
                for start in range(0, count, _HDF5_READ_BLOCK * 16):
                    _read_hdf5_block(handle, file, key, start, _HDF5_READ_BLOCK * 16)
    return count


def _read_hdf5_block(handle: h5py.File, file: str, key: str, start: int, size: int) -> np.ndarray:
    try:
        return handle[key][start:start + size]
    except OSError as exc:
        raise RecordError(f"{file}: corrupt HDF5 data in {key!r} near record {start} ({exc})") from None


def _check_sidecar_counts(path: PathLike, files: List[str], counts: List[int]) -> None:
    sidecar = read_sidecar(path)
    if sidecar is None:
        return
    stated = {entry["file"]: entry["count"] for entry in sidecar.get("files", [])}
    for file, count in zip(files, counts):
        name = os.path.basename(file)
        if name in stated and stated[name] != count:
            raise RecordError(f"{file}: holds {count} records but its sidecar "
                              f"{sidecar_path(path)} says {stated[name]} (truncated?)")


# --------------------------------------------------------------------------- reading

def read_records(path: PathSpec, shapes: Shapes, fmt: Optional[str] = None,
                 validate: bool = True) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of dicts ``{key: uint8 [H, W, C]}``, the files' records in order.

    ``shapes`` maps feature names to patch shapes, e.g. ``{'label': (64, 64, 3)}``; the files are
    checked first by ``inspect_records`` (see there for ``validate``).
    """
    records = inspect_records(path, shapes, fmt, validate)
    if records.format == "tfrecord":
        return _tfrecord_dataset(records)
    return _hdf5_dataset(records)


def read_patches(path: PathSpec, patch_shape: Optional[Sequence[int]] = None,
                 fmt: Optional[str] = None, validate: bool = True) -> tf.data.Dataset:
    """HR patches ``uint8 [H, W, C]`` (the ``label`` feature) from TFRecord or HDF5 files.

    ``patch_shape`` ``(H, W, C)`` defaults to the one in the sidecar or the HDF5 file.
    """
    if patch_shape is None:
        patch_shape = shapes_from_metadata(path, [LABEL_KEY])[LABEL_KEY]
    dataset = read_records(path, {LABEL_KEY: tuple(patch_shape)}, fmt, validate)
    return dataset.map(lambda record: record[LABEL_KEY])


def read_patch_pairs(path: PathSpec, label_shape: Optional[Sequence[int]] = None,
                     image_shape: Optional[Sequence[int]] = None, fmt: Optional[str] = None,
                     validate: bool = True) -> tf.data.Dataset:
    """Pretraining pairs ``(label uint8 [H, W, C], image uint8 [H/s, W/s, C])``."""
    if label_shape is None or image_shape is None:
        found = shapes_from_metadata(path, [LABEL_KEY, IMAGE_KEY])
        label_shape = label_shape or found[LABEL_KEY]
        image_shape = image_shape or found[IMAGE_KEY]
    shapes = {LABEL_KEY: tuple(label_shape), IMAGE_KEY: tuple(image_shape)}
    dataset = read_records(path, shapes, fmt, validate)
    return dataset.map(lambda record: (record[LABEL_KEY], record[IMAGE_KEY]))


def _tfrecord_dataset(records: RecordSet) -> tf.data.Dataset:
    shapes = records.shapes
    features = {k: tf.io.FixedLenFeature([], tf.string) for k in shapes}

    def parse(serialized, file):
        parsed = tf.io.parse_single_example(serialized, features)
        out = {}
        for key, shape in shapes.items():
            raw = tf.io.decode_raw(parsed[key], tf.uint8)
            size_ok = tf.debugging.Assert(
                tf.equal(tf.size(raw), int(np.prod(shape))),
                [f"a record in", file, f"has a {key!r} of", tf.size(raw),
                 f"bytes, expected {'x'.join(map(str, shape))}"])
            with tf.control_dependencies([size_ok]):
                out[key] = tf.reshape(raw, shape)
        return out

    def one_file(file):
        return tf.data.TFRecordDataset(file, buffer_size=1 << 22).map(lambda r: parse(r, file))

    if len(records.files) == 1:
        return one_file(records.files[0])
    return tf.data.Dataset.from_tensor_slices(list(records.files)).flat_map(one_file)


def _hdf5_dataset(records: RecordSet) -> tf.data.Dataset:
    shapes = records.shapes
    keys = sorted(shapes)

    def blocks(file: bytes):
        file = file.decode()
        with _open_hdf5(file) as handle:
            count = handle[keys[0]].shape[0]
            for start in range(0, count, _HDF5_READ_BLOCK):
                yield tuple(_read_hdf5_block(handle, file, k, start, _HDF5_READ_BLOCK) for k in keys)

    signature = tuple(tf.TensorSpec((None,) + shapes[k], tf.uint8) for k in keys)

    def one_file(file):
        dataset = tf.data.Dataset.from_generator(blocks, output_signature=signature, args=(file,))
        return dataset.unbatch().map(lambda *arrays: dict(zip(keys, arrays)))

    return tf.data.Dataset.from_tensor_slices(list(records.files)).flat_map(one_file)
