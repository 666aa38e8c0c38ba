"""Checkpoints: the authors' TF1 files, TF2 training checkpoints, weights-only and SavedModel exports.

Formats ``load_weights`` reads (it tells them apart by the variable names inside):

- **Name-based** ("TF1"): variables stored under the reference's names ``MODEL/conv1/kernel`` ...
  ``MODEL/conv8/bias``.  The authors' ``Pretrained/Pretrained`` (weights + ``Adam``/``Adam_1`` slots,
  ``beta1_power``, ``beta2_power``, ``global_step``) and ``Model/<name>`` checkpoints (weights +
  ``Adam`` ... ``Adam_3`` slots, two pairs of beta powers, ``global_step``, ``stop_grad``) are of this
  kind, and so is this project's weights-only export (``export_weights``: the 16 weights, nothing else,
  readable by the reference's own TF1 ``Saver``).  Only the weights are read; optimizer slots and
  counters are ignored, so the reference's ``Key MODEL/conv7/kernel/Adam_3 not found`` cannot happen.
- **Object-based** ("TF2"): ``tf.train.Checkpoint`` files written through ``make_manager``, where the
  network is the trackable named ``model`` (``MODEL_KEY``).  Their variable keys follow Keras's object
  graph, so they are for resuming training with the same code; ship weights with ``export_weights``.
- **SavedModel** directories written by ``export_saved_model`` (their ``variables/variables``
  checkpoint stores the reference names too).

Wherever a checkpoint is asked for, ``path`` may be a checkpoint prefix (``.../Pretrained``; a file
name ending in ``.index``, ``.data-*`` or ``.meta`` is taken as its prefix), a directory holding
checkpoints (its latest, see ``resolve_checkpoint``) or a SavedModel directory.  Every problem is a
``CheckpointError`` naming the path and, for missing or mis-shaped tensors, listing what was expected
and what was found.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import trackable_object_graph_pb2

from mzsr_tf.config import PRESETS, TRANSFER_AUTO, TRANSFER_CANDIDATES, ModelConfig, Preset, get_preset
from mzsr_tf.model import MZSRNet, SCOPE, forward, param_shapes

log = logging.getLogger(__name__)

MODEL_KEY = "model"
"""Name of the network among the trackables of a TF2 training checkpoint (``make_manager``)."""

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_ATTRIBUTE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SUFFIXES = re.compile(r"(\.index|\.meta|\.data-\d{5}-of-\d{5})$")
_LISTED = 40  # at most this many found variables are listed in an error message

FORMAT_NAMES = "name-based (TF1 layout)"
FORMAT_OBJECT = "object-based (TF2 tf.train.Checkpoint)"
FORMAT_SAVED_MODEL = "SavedModel"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not hold the MZSR network's weights."""


# --------------------------------------------------------------------------- locating checkpoints

def resolve_checkpoint(path: str) -> str:
    """The checkpoint prefix ``path`` designates.

    - ``prefix`` with ``prefix.index`` present: itself.
    - ``prefix.index``, ``prefix.data-00000-of-00001`` or ``prefix.meta``: ``prefix``.
    - A SavedModel directory (``saved_model.pb``): its ``variables/variables``.
    - Another directory: the checkpoint its ``checkpoint`` state file names (as written by
      ``tf.train.CheckpointManager`` or a TF1 ``Saver``); without one, its only ``*.index``
      checkpoint, or among several the one with the highest trailing number (``ckpt-12`` > ``ckpt-9``).

    Raises ``CheckpointError`` naming ``path`` when nothing there is a checkpoint.
    """
    path = os.fspath(os.path.expanduser(path))
    if os.path.isdir(path):
        return _latest_in_directory(path)
    prefix = _SUFFIXES.sub("", path)
    if os.path.isfile(prefix + ".index"):
        return prefix
    if os.path.isfile(path):
        raise CheckpointError(
            f"{path} is not a TensorFlow checkpoint: expected a prefix P with files P.index and "
            f"P.data-00000-of-00001, or a directory holding such a checkpoint")
    raise CheckpointError(f"no checkpoint at {path}: {prefix}.index does not exist")


def _latest_in_directory(directory: str) -> str:
    if os.path.isfile(os.path.join(directory, "saved_model.pb")):
        prefix = os.path.join(directory, "variables", "variables")
        if not os.path.isfile(prefix + ".index"):
            raise CheckpointError(f"SavedModel {directory} has no variables ({prefix}.index is missing)")
        return prefix
    if os.path.isfile(os.path.join(directory, "checkpoint")):
        state_file = os.path.join(directory, "checkpoint")
        try:
            state = tf.train.get_checkpoint_state(directory)
        except (ValueError, text_format.ParseError, tf.errors.OpError) as error:
            raise CheckpointError(
                f"{state_file} is not a valid checkpoint state file ({_first_line(error)})") from None
        named = state.model_checkpoint_path if state else ""
        if not named:
            raise CheckpointError(f"{state_file} is not a valid checkpoint state file (it names no checkpoint)")
        if not os.path.isfile(named + ".index"):
            raise CheckpointError(
                f"{state_file} names {named}, but {named}.index does not exist")
        return named
    prefixes = sorted(p[:-len(".index")] for p in glob.glob(os.path.join(glob.escape(directory), "*.index")))
    if not prefixes:
        raise CheckpointError(f"directory {directory} holds no checkpoint (no *.index file)")
    if len(prefixes) == 1:
        return prefixes[0]
    numbered = [(int(m.group(1)), p) for p in prefixes for m in [re.search(r"-(\d+)$", p)] if m]
    if len(numbered) == len(prefixes):
        return max(numbered)[1]
    raise CheckpointError(
        f"directory {directory} holds several checkpoints and no 'checkpoint' file saying which is "
        f"the latest: {', '.join(os.path.basename(p) for p in prefixes)}; pass one prefix, e.g. "
        f"{prefixes[0]}")


def _list_variables(prefix: str) -> Dict[str, Tuple[int, ...]]:
    """``{key: shape}`` of the checkpoint at ``prefix`` (read from its ``.index`` only)."""
    try:
        return {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(
            f"{prefix}.index is not a readable TensorFlow checkpoint index "
            f"({_first_line(error)})") from None


def _check_data_files(prefix: str) -> None:
    """A clear error when the ``.data-*-of-*`` shards beside ``prefix.index`` are missing."""
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    expected = prefix + ".data-00000-of-00001"
    if shards:
        count = int(re.search(r"-of-(\d+)$", shards[0]).group(1))
        expected_shards = [f"{prefix}.data-{i:05d}-of-{count:05d}" for i in range(count)]
        missing = [s for s in expected_shards if not os.path.isfile(s)]
        if not missing:
            return
        expected = ", ".join(missing)
    raise CheckpointError(
        f"checkpoint {prefix} is incomplete: {prefix}.index exists but its data file {expected} is "
        f"missing (a checkpoint is copied as all its files: .index, .data-00000-of-00001 and, for the "
        f"authors' files, .meta)")


def _first_line(error: BaseException) -> str:
    """A one-line summary of a TensorFlow error (restore assertions list the unmatched variables)."""
    text = (getattr(error, "message", None) or str(error)).strip()
    if isinstance(error, AssertionError):
        unmatched = (re.findall(r"<Variable path=([^,\s]+), shape=\(([^)]*)\)", text)
                     + re.findall(r"<tf\.Variable '([^']+)' shape=\(([^)]*)\)", text))
        if unmatched:
            return (f"{len(unmatched)} variable(s) not found in the checkpoint: "
                    + ", ".join(f"{p} [{s}]" for p, s in unmatched[:_LISTED]))
        text = text.split(" Showing ")[0]
    return text.splitlines()[0] if text else type(error).__name__


def _describe(found: Mapping[str, Tuple[int, ...]]) -> str:
    """``name [shape]`` list of (some of) ``found``, in its order, for error messages."""
    names = list(found)
    text = ", ".join(f"{n} {list(found[n])}" for n in names[:_LISTED])
    if len(names) > _LISTED:
        text += f", ... ({len(names) - _LISTED} more)"
    return text or "(nothing)"


def _is_bookkeeping(key: str) -> bool:
    """Optimizer slots and counters of the authors' checkpoints (ignored when reading weights)."""
    return bool(re.search(r"/Adam(_\d+)?$", key)) or key.split("/")[-1] in (
        "beta1_power", "beta2_power", "beta1_power_1", "beta2_power_1", "global_step", "stop_grad")


# --------------------------------------------------------------------------- reading weights

def _named_keys(found: Mapping[str, Tuple[int, ...]]) -> Dict[str, str]:
    """``{reference-style name: checkpoint key}`` for keys stored under the ``MODEL/`` scope.

    TF1 checkpoints store ``MODEL/conv1/kernel`` itself; the variables of an ``export_saved_model``
    directory store ``MODEL/conv1/kernel/.ATTRIBUTES/VARIABLE_VALUE``.
    """
    named = {}
    for key in found:
        name = key[:-len(_ATTRIBUTE_SUFFIX)] if key.endswith(_ATTRIBUTE_SUFFIX) else key
        if name.startswith(SCOPE + "/"):
            named[name] = key
    return named


def read_tf1_weights(prefix: str, config: ModelConfig = ModelConfig()) -> Dict[str, np.ndarray]:
    """The ``2 * depth`` weights of a name-based checkpoint, as float32 numpy arrays.

    Public API (no caller in the package besides ``load_weights``' name-based path): the authors'
    weights as numpy arrays without building a Keras model, e.g. to port them elsewhere.

    Args:
      prefix: checkpoint prefix such as ``.../Pretrained/Pretrained`` (or anything
        ``resolve_checkpoint`` accepts).
      config: the network the weights are for; sets the expected names and shapes.

    Returns:
      ``{name: array}`` in ``param_names(config)`` order, keys ``MODEL/conv1/kernel`` ... .  Optimizer
      slots (``/Adam``, ``/Adam_1`` ...), beta powers, ``global_step`` and ``stop_grad`` are ignored.

    Raises:
      CheckpointError: missing or unreadable files, or a weight that is missing, mis-shaped, not
        floating point or not finite; the message lists the expected and the found tensors.
    """
    prefix = resolve_checkpoint(prefix)
    found = _list_variables(prefix)
    weights, _ = _read_named(prefix, found, param_shapes(config))
    return weights


def _read_named(prefix: str, found: Mapping[str, Tuple[int, ...]],
                expected: Mapping[str, Tuple[int, ...]]) -> Tuple[Dict[str, np.ndarray], int]:
    """Read ``expected`` from a name-based checkpoint; returns (weights, number of ignored keys)."""
    named = _named_keys(found)
    expected_text = _describe(dict(expected))
    missing = [name for name in expected if name not in named]
    if missing:
        weights_found = {n: found[k] for n, k in named.items() if not _is_bookkeeping(n)}
        ignored = len(found) - len(weights_found)
        kind = "" if named else (
            " (it looks like a TF2 object-based checkpoint; read it with load_weights)"
            if _OBJECT_GRAPH_KEY in found else "")
        raise CheckpointError(
            f"checkpoint {prefix} is missing {len(missing)} of the {len(expected)} MZSR weight tensors"
            f"{kind}: missing {', '.join(missing)}. Expected: {expected_text}. Found: "
            + (_describe(weights_found) if named else _describe(found))
            + (f" (+ {ignored} optimizer/bookkeeping variables not listed)" if named and ignored else ""))
    wrong = [f"{name} has shape {list(found[named[name]])}, expected {list(shape)}"
             for name, shape in expected.items() if tuple(found[named[name]]) != tuple(shape)]
    if wrong:
        raise CheckpointError(
            f"checkpoint {prefix} does not fit this network ({len(wrong)} mis-shaped tensor(s)): "
            + "; ".join(wrong) + f". Expected: {expected_text}. Found: "
            + _describe({n: found[named[n]] for n in expected}))
    _check_data_files(prefix)
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    weights = {}
    for name in expected:
        key = named[name]
        if not dtypes[key].is_floating:
            raise CheckpointError(
                f"checkpoint {prefix}: {name} has dtype {dtypes[key].name}, expected a floating-point "
                f"tensor (float32)")
        try:
            value = reader.get_tensor(key)
        except (tf.errors.OpError, IndexError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {prefix}: could not read {name} from its data file; the file is corrupt "
                f"or truncated ({_first_line(error)})") from None
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"checkpoint {prefix}: {name} contains NaN or Inf values")
        weights[name] = np.asarray(value, dtype=np.float32)
    return weights, len([key for key in found if key != _OBJECT_GRAPH_KEY]) - len(expected)


def _expected_shapes(model: MZSRNet) -> Dict[str, Tuple[int, ...]]:
    return {name: tuple(variable.shape)
            for name, variable in zip(model.param_names, model.trainable_variables)}


def load_weights(model: MZSRNet, path: str) -> str:
    """Load the network weights at ``path`` into ``model``; return the checkpoint prefix read.

    ``path`` is anything ``resolve_checkpoint`` accepts: a TF1 prefix (the authors' ``Pretrained`` or
    ``Model/*`` files, or an ``export_weights`` file), a TF2 prefix (``make_manager`` checkpoints), a
    directory holding one (its latest), or an ``export_saved_model`` directory.  Only weights are
    read.  Nothing is assigned unless all of them are present and well-shaped.  Logs (INFO) which file
    and format were loaded.

    Raises:
      CheckpointError: see ``read_tf1_weights``; for TF2 checkpoints also a missing ``model`` object.

    Example::

        model = MZSRNet()
        load_weights(model, "checkpoints/direct_x2")        # the project's model (a folder: its latest)
        load_weights(model, "checkpoints/Model/Directx2")   # the authors' TF1 checkpoint prefix
        sr = model(ilr)                                     # ilr: [N, H, W, 3] float32 in [0, 1]
    """
    prefix = resolve_checkpoint(path)
    found = _list_variables(prefix)
    expected = _expected_shapes(model)
    if _named_keys(found):
        weights, ignored = _read_named(prefix, found, expected)
        for name, variable in zip(model.param_names, model.trainable_variables):
            variable.assign(weights[name])
        fmt = FORMAT_SAVED_MODEL if any(k.endswith(_ATTRIBUTE_SUFFIX) for k in found) else FORMAT_NAMES
        extra = f"; ignored {ignored} optimizer/bookkeeping variables" if ignored else ""
    elif _OBJECT_GRAPH_KEY in found:
        _restore_object_based(model, prefix, found, expected)
        fmt, extra = FORMAT_OBJECT, ""
    else:
        raise CheckpointError(
            f"checkpoint {prefix} holds neither the MZSR weights under their reference names nor a TF2 "
            f"object graph. Expected: {_describe(dict(expected))}. Found: {_describe(found)}")
    log.info("loaded %d MZSR weights from %s [%s%s]", len(expected), prefix, fmt, extra)
    return prefix


def load_average(model: MZSRNet, paths: Sequence[str]) -> List[str]:
    """Load the element-wise mean of the weights at ``paths`` into ``model`` (a uniform weight average,
    as stochastic weight averaging does over the checkpoints of one run); return the prefixes read.

    Each path is read as ``load_weights`` reads it (any format); ``model`` is left holding the mean.
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    prefixes, total = [], None
    for path in paths:
        prefixes.append(load_weights(model, path))
        values = [variable.numpy().astype(np.float64) for variable in model.trainable_variables]
        total = values if total is None else [a + b for a, b in zip(total, values)]
    for variable, value in zip(model.trainable_variables, total):
        variable.assign(tf.cast(value / len(paths), variable.dtype))
    log.info("averaged the MZSR weights of %d checkpoints", len(paths))
    return prefixes


def _variables_under(prefix: str, found: Mapping[str, Tuple[int, ...]],
                     child: str) -> Dict[str, Tuple[int, ...]]:
    """``{object path: shape}`` of the variables below the root's ``child`` in a TF2 checkpoint.

    Walks the checkpoint's object graph: a variable's key names only its *first* path from the root
    (for example ``optimizer/_trainable_variables/0`` when an optimizer is saved too), so keys alone do
    not tell which variables belong to the network.  A ``CheckpointError`` lists the root's children
    when it has no ``child``.
    """
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(prefix).get_tensor(_OBJECT_GRAPH_KEY))
    children = {ref.local_name: ref.node_id for ref in graph.nodes[0].children}
    if child not in children:
        raise CheckpointError(
            f"TF2 checkpoint {prefix} has no '{child}' object (the network must be saved as "
            f"tf.train.Checkpoint({child}=...), as make_manager does); its top-level objects are: "
            f"{', '.join(sorted(children)) or '(none)'}")
    variables, queue, seen = {}, [(children[child], child)], set()
    while queue:
        node_id, path = queue.pop(0)
        if node_id in seen:
            continue
        seen.add(node_id)
        for attribute in graph.nodes[node_id].attributes:
            if attribute.checkpoint_key in found:
                variables[path] = found[attribute.checkpoint_key]
        queue += [(ref.node_id, f"{path}/{ref.local_name}") for ref in graph.nodes[node_id].children]
    return variables


def _restore_object_based(model: MZSRNet, prefix: str, found: Mapping[str, Tuple[int, ...]],
                          expected: Mapping[str, Tuple[int, ...]]) -> None:
    """Restore ``model`` from the ``model`` object of a TF2 checkpoint, all-or-nothing."""
    _check_data_files(prefix)
    under_model = _variables_under(prefix, found, MODEL_KEY)
    scratch = MZSRNet(model.model_config)  # restored first, so a failure leaves `model` untouched
    try:
        status = tf.train.Checkpoint(**{MODEL_KEY: scratch}).read(prefix)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise CheckpointError(
            f"TF2 checkpoint {prefix} does not hold this network's weights ({_first_line(error)}). "
            f"Expected: {_describe(dict(expected))}. Found under '{MODEL_KEY}': "
            f"{_describe(under_model)}") from None
    for target, source in zip(model.trainable_variables, scratch.trainable_variables):
        target.assign(source)


# --------------------------------------------------------------------------- exports

def _weights_by_name(model: MZSRNet) -> Dict[str, np.ndarray]:
    return {name: np.asarray(variable.numpy(), dtype=np.float32)
            for name, variable in zip(model.param_names, model.trainable_variables)}


def export_weights(model: MZSRNet, prefix: str) -> str:
    """Write ``model``'s weights alone as a name-based checkpoint at ``prefix``; return ``prefix``.

    Writes ``prefix.index`` and ``prefix.data-00000-of-00001`` (about 0.9 MB for the paper's
    network) holding ``MODEL/conv1/kernel`` ... under the reference's names, nothing else: small
    enough to ship in ``checkpoints/``, independent of Keras internals, and readable by
    ``load_weights`` as well as by the reference's TF1 ``tf.train.Saver``.
    """
    prefix = os.fspath(os.path.expanduser(prefix))
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    weights = _weights_by_name(model)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(weights),
                      shape_and_slices=[""] * len(weights),
                      tensors=[tf.constant(value) for value in weights.values()])
    log.info("exported %d MZSR weights to %s", len(weights), prefix)
    return prefix


class _ServingModule(tf.Module):
    """Variables under the reference names (``MODEL/conv1/kernel`` ...) and a serving function."""

    def __init__(self, weights: Mapping[str, np.ndarray], channels: int):
        super().__init__(name="mzsr")
        self._names = list(weights)
        scope = tf.Module(name=SCOPE)
        for name, value in weights.items():
            _, layer, kind = name.split("/")
            if not hasattr(scope, layer):
                setattr(scope, layer, tf.Module(name=layer))
            setattr(getattr(scope, layer), kind, tf.Variable(value, name=name))
        setattr(self, SCOPE, scope)
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="ilr")])

    def _params(self) -> List[tf.Variable]:
        scope = getattr(self, SCOPE)
        return [getattr(getattr(scope, name.split("/")[1]), name.split("/")[2]) for name in self._names]

    def _serve(self, ilr: tf.Tensor) -> Dict[str, tf.Tensor]:
        sr = forward(self._params(), ilr, compute_dtype=tf.float32)
        return {"sr": tf.clip_by_value(sr, 0.0, 1.0)}


def export_saved_model(model: MZSRNet, directory: str) -> str:
    """Write ``model`` as a SavedModel for serving; return ``directory``.

    The signature ``serving_default`` takes ``ilr``, float32 ``[N, H, W, channels]`` images in
    [0, 1] already interpolated to the output size (cubic ``imresize`` of the LR image, as the
    reference feeds its network), and returns ``{"sr": ...}``, the same shape, clipped to [0, 1].
    It computes in float32 whatever the Keras policy at export time.  Use it with
    ``tf.saved_model.load(directory).signatures["serving_default"](ilr=images)["sr"]``.  The
    directory is also accepted by ``load_weights``.
    """
    directory = os.fspath(os.path.expanduser(directory))
    module = _ServingModule(_weights_by_name(model), model.model_config.channels)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
    log.info("exported SavedModel to %s (signature serving_default: ilr -> sr)", directory)
    return directory


# --------------------------------------------------------------------------- transfer weights

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The repository's folder: relative checkpoint names (``checkpoints/...``) are looked up under it."""


def resolve_transfer(path: Optional[str], repo_root: str = REPO_ROOT) -> Optional[str]:
    """The weights a new meta-training run starts from: ``path`` itself, ``None`` (random weights) for
    ``None``, or for ``'auto'`` the first of ``config.TRANSFER_CANDIDATES`` under ``repo_root`` that exists
    (the authors' ``Pretrained``, then the project's ``pretrained_x2``); ``CheckpointError`` if neither does."""
    if path != TRANSFER_AUTO:
        return path
    for candidate in TRANSFER_CANDIDATES:
        prefix = os.path.join(repo_root, candidate)
        if os.path.exists(prefix + ".index"):
            return prefix
    raise CheckpointError(
        f"no pre-trained weights to start from: looked for {' and '.join(TRANSFER_CANDIDATES)} (the authors' "
        f"Pretrained, or the project's own from scripts/pretrain.py); pass --transfer PREFIX, or --transfer "
        f"none for random weights")



# --------------------------------------------------------------------------- the checkpoint of a preset

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
    raise CheckpointError(
        f"no checkpoint for --model {preset.model_index} ({preset.reference_name}): looked for "
        + " and ".join(candidates) + "; pass --checkpoint PREFIX")


def checkpoints_for_presets(entries: Optional[Sequence[str]], presets: Sequence[str],
                            repo_root: str = REPO_ROOT) -> Dict[str, str]:
    """The checkpoint of each preset from ``--checkpoint`` entries.

    An entry is ``PATH`` (for every preset) or ``PRESET=PATH`` (e.g. ``bicubic_x2=checkpoints/Model/
    Bicubicx2``); a preset with neither gets ``checkpoint_for_preset``'s default (the authors' file in
    ``checkpoints/Model/`` or the project's own model).
    """
    common, by_preset = None, {}
    for entry in entries or []:
        name, sep, path = entry.partition("=")
        if sep and name in PRESETS:
            by_preset[name] = path
        elif common is not None:
            raise CheckpointError(f"--checkpoint: two paths for every preset ({common}, {entry}); "
                                  "use PRESET=PATH to give one per preset")
        else:
            common = entry
    return {preset: by_preset.get(preset) or checkpoint_for_preset(common, get_preset(preset), repo_root)
            for preset in presets}


# --------------------------------------------------------------------------- TF2 training checkpoints

def make_manager(directory: str, max_to_keep: Optional[int] = 5, *, step: Optional[tf.Variable] = None,
                 checkpoint_name: str = "ckpt", **trackables) -> tf.train.CheckpointManager:
    """A ``tf.train.CheckpointManager`` over ``tf.train.Checkpoint(step=step, **trackables)``.

    Args:
      directory: where checkpoints ``<checkpoint_name>-<step>`` and the ``checkpoint`` state file go.
      max_to_keep: how many recent checkpoints to keep (``None`` keeps all).
      step: an int64 scalar ``tf.Variable`` counting training steps; a new one starting at 0 when
        ``None``.  Reach it as ``manager.checkpoint.step``; ``save_checkpoint`` numbers files by it.
      trackables: everything to save and restore, e.g. ``model=MZSRNet(...)`` (name it ``model`` so
        ``load_weights`` finds it), ``optimizer=keras.optimizers.Adam(...)``, and any other trackable
        state (``tf.Variable`` counters, ``tf.random.Generator``, ...).  A Keras optimizer need not be
        built before ``restore_latest``: its slots are restored when it creates them.
    """
    if step is None:
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(step=step, **trackables)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep,
                                      checkpoint_name=checkpoint_name)


def save_checkpoint(manager: tf.train.CheckpointManager) -> str:
    """Save everything ``manager`` tracks, numbered by its step counter; return the prefix written."""
    path = manager.save(checkpoint_number=int(manager.checkpoint.step.numpy()))
    log.info("saved checkpoint %s (step %d)", path, int(manager.checkpoint.step.numpy()))
    return path


def restore_latest(manager: tf.train.CheckpointManager) -> Optional[str]:
    """Restore the latest checkpoint of ``manager``'s directory, if any; return its prefix or None.

    Every object already tracked (model variables, step, built optimizer slots, ...) must be matched
    by the checkpoint; otherwise ``CheckpointError`` names the file and the first unmatched object.
    """
    latest = manager.latest_checkpoint
    if latest is None:
        log.info("no checkpoint in %s; starting from step %d", manager.directory,
                 int(manager.checkpoint.step.numpy()))
        return None
    try:
        status = manager.checkpoint.restore(latest)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise CheckpointError(
            f"cannot resume from {latest}: it does not match what is being restored "
            f"({_first_line(error)})") from None
    log.info("resumed from %s (step %d)", latest, int(manager.checkpoint.step.numpy()))
    return latest
