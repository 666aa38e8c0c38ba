"""Tests for mzsr_tf.checkpoints: the authors' TF1 layouts, TF2 save/resume, exports, every error."""
import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import checkpoints
from mzsr_tf.checkpoints import CheckpointError, load_weights, read_tf1_weights
from mzsr_tf.config import ModelConfig
from mzsr_tf.model import MZSRNet, PARAM_NAMES, param_shapes

TINY = ModelConfig(width=4, depth=3)


# --------------------------------------------------------------------------- TF1 checkpoints by hand

def model_layout():
    """``{key: (shape, dtype)}`` of the authors' ``Model/*.index`` (86 variables), written out by hand.

    Weights plus four Adam slots each (two Adam optimizers in their graph), two pairs of beta powers,
    an int32 ``global_step`` and the bool ``stop_grad`` switch.
    """
    layout = {}
    for name, shape in param_shapes().items():
        layout[name] = (shape, np.float32)
        for slot in ("Adam", "Adam_1", "Adam_2", "Adam_3"):
            layout[f"{name}/{slot}"] = (shape, np.float32)
    for name in ("beta1_power", "beta1_power_1", "beta2_power", "beta2_power_1"):
        layout[name] = ((), np.float32)
    layout["global_step"] = ((), np.int32)
    layout["stop_grad"] = ((), np.bool_)
    return layout


def random_values(layout, seed=0):
    rng = np.random.default_rng(seed)
    return {name: (rng.normal(0.0, 0.1, shape) if dtype == np.float32 else np.ones(shape)).astype(dtype)
            for name, (shape, dtype) in layout.items()}


def write_tf1_checkpoint(prefix, values):
    """Save ``{key: array}`` with a ``tf.compat.v1`` ``Saver`` in a graph, as TF1 code writes them."""
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = {name: tf.compat.v1.Variable(value, name=f"v{i}")
                     for i, (name, value) in enumerate(values.items())}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix)


@pytest.fixture
def model_layout_checkpoint(tmp_path):
    """A TF1 checkpoint in the authors' ``Model/*`` layout with random values: (prefix, values)."""
    values = random_values(model_layout())
    return write_tf1_checkpoint(str(tmp_path / "Model" / "Directx2"), values), values


def weights_of(model):
    return [v.numpy() for v in model.trainable_variables]


def random_image(seed=0, shape=(1, 21, 26, 3)):
    return tf.constant(np.random.default_rng(seed).random(shape), tf.float32)


# --------------------------------------------------------------------------- the authors' layouts

def test_hand_written_layout_is_the_published_index(reference_dir):
    layout = model_layout()
    for name in ("Directx2", "Multi-scale", "Bicubicx2", "Directx4"):
        prefix = str(reference_dir / "Model" / name)
        assert {k: tuple(s) for k, s in tf.train.list_variables(prefix)} == {
            k: shape for k, (shape, _) in layout.items()}, name
        dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
        assert {k: d.as_numpy_dtype for k, d in dtypes.items()} == {k: d for k, (_, d) in layout.items()}


def test_model_layout_tf1_checkpoint_loads_only_the_weights(model_layout_checkpoint, caplog):
    prefix, values = model_layout_checkpoint
    weights = read_tf1_weights(prefix)
    assert list(weights) == list(PARAM_NAMES)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(weights[name], values[name])
        assert weights[name].dtype == np.float32
    model = MZSRNet(seed=1)
    with caplog.at_level(logging.INFO, logger="mzsr_tf.checkpoints"):
        assert load_weights(model, prefix) == prefix
    for name, variable in zip(PARAM_NAMES, model.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), values[name])
    assert f"from {prefix} [name-based (TF1 layout); ignored 70 optimizer/bookkeeping variables]" in caplog.text


def test_pretrained_layout_loads(reference_dir, caplog):
    prefix = str(reference_dir / "Pretrained" / "Pretrained")
    weights = read_tf1_weights(prefix)
    assert list(weights) == list(PARAM_NAMES)
    assert [w.shape for w in weights.values()] == list(param_shapes().values())
    model = MZSRNet()
    with caplog.at_level(logging.INFO, logger="mzsr_tf.checkpoints"):
        load_weights(model, prefix)
    assert "ignored 35 optimizer/bookkeeping variables" in caplog.text
    for name, variable in zip(PARAM_NAMES, model.trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), weights[name])
    # not the Adam slots: the slot of conv1/kernel differs from the weight itself
    slot = tf.train.load_checkpoint(prefix).get_tensor("MODEL/conv1/kernel/Adam")
    assert not np.array_equal(slot, weights["MODEL/conv1/kernel"])


# Per-image PSNR (dB, Y channel, shave 2, uint8) of the Pretrained weights before any adaptation step on
# Input/g20/Set5 vs GT/Set5, produced by running the reference itself: JWSoh/MZSR's test.Test (from
# ../ref/MZSR_compat, tf.compat.v1 graph, numpy imresize) with --model 0 and 0 adaptation steps, by
# ../ref/golden_scripts/model_pretrained_psnr.py.  Their mean is the reference's "Initial" 29.1360.
REFERENCE_INITIAL_PSNR = {
    "baby": 32.354732733831014,
    "bird": 30.70353737635246,
    "butterfly": 23.18132464312731,
    "head": 32.1827409348184,
    "woman": 27.257442827379876,
}


def test_pretrained_weights_reproduce_the_references_initial_psnr(reference_dir):
    import imageio.v2 as imageio

    from mzsr_tf.imresize import imresize
    from mzsr_tf.metrics import modcrop, psnr_y

    model = MZSRNet()
    load_weights(model, str(reference_dir / "Pretrained" / "Pretrained"))
    measured = {}
    for name in REFERENCE_INITIAL_PSNR:
        lr = imageio.imread(reference_dir / "Input" / "g20" / "Set5" / f"{name}.png").astype(np.float32) / 255.0
        gt = imageio.imread(reference_dir / "GT" / "Set5" / f"{name}_GT.png").astype(np.float32) / 255.0
        gt = modcrop(gt, 2)
        # as the reference: cubic upscale (computed in float64) to the GT shape, fed as float32
        ilr = imresize(lr.astype(np.float64), scale=2.0, output_shape=gt.shape, kernel="cubic")
        sr = np.clip(model(ilr[None].astype(np.float32)).numpy()[0], 0.0, 1.0)
        measured[name] = psnr_y(sr, gt, shave_border=2)
    for name, expected in REFERENCE_INITIAL_PSNR.items():
        assert abs(measured[name] - expected) <= 1e-3, (name, measured[name], expected)
    assert round(float(np.mean(list(measured.values()))), 4) == 29.1360


def test_file_names_of_a_checkpoint_are_taken_as_its_prefix(model_layout_checkpoint):
    prefix, values = model_layout_checkpoint
    for path in (prefix + ".index", prefix + ".data-00000-of-00001", prefix + ".meta"):
        assert checkpoints.resolve_checkpoint(path) == prefix
    model = MZSRNet()
    assert load_weights(model, prefix + ".index") == prefix
    np.testing.assert_array_equal(model.trainable_variables[-1].numpy(), values["MODEL/conv8/bias"])


# --------------------------------------------------------------------------- directories

def test_directory_with_a_state_file_gives_its_latest(tmp_path):
    model = MZSRNet(TINY, seed=0)
    manager = checkpoints.make_manager(str(tmp_path), max_to_keep=3, model=model)
    for step in (5, 12):
        manager.checkpoint.step.assign(step)
        checkpoints.save_checkpoint(manager)
    assert checkpoints.resolve_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-12")


def test_directory_without_state_file(tmp_path):
    model = MZSRNet(TINY, seed=0)
    checkpoints.export_weights(model, str(tmp_path / "only" / "weights"))
    assert checkpoints.resolve_checkpoint(str(tmp_path / "only")) == str(tmp_path / "only" / "weights")
    for step in (9, 12, 100):
        checkpoints.export_weights(model, str(tmp_path / "numbered" / f"model-{step}"))
    assert checkpoints.resolve_checkpoint(str(tmp_path / "numbered")) == str(tmp_path / "numbered" / "model-100")


def test_directory_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"directory .*empty holds no checkpoint \(no \*\.index file\)"):
        load_weights(MZSRNet(TINY), str(tmp_path / "empty"))
    model = MZSRNet(TINY, seed=0)
    for name in ("Directx2", "Bicubicx2"):
        checkpoints.export_weights(model, str(tmp_path / "Model" / name))
    with pytest.raises(CheckpointError, match=r"several checkpoints and no 'checkpoint' file .*: "
                                              r"Bicubicx2, Directx2; pass one prefix"):
        load_weights(MZSRNet(TINY), str(tmp_path / "Model"))
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\n')
    with pytest.raises(CheckpointError, match=r"stale/checkpoint names .*ckpt-7, but .*ckpt-7\.index does not exist"):
        load_weights(MZSRNet(TINY), str(stale))
    (stale / "checkpoint").write_text("")
    with pytest.raises(CheckpointError, match=r"stale/checkpoint is not a valid checkpoint state file \(Invalid"):
        load_weights(MZSRNet(TINY), str(stale))
    (stale / "checkpoint").write_text("this is { not a state")
    with pytest.raises(CheckpointError, match=r"stale/checkpoint is not a valid checkpoint state file \(it names"):
        load_weights(MZSRNet(TINY), str(stale))
    fake_saved_model = tmp_path / "saved"
    fake_saved_model.mkdir()
    (fake_saved_model / "saved_model.pb").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"SavedModel .*saved has no variables \(.*variables\.index is missing\)"):
        load_weights(MZSRNet(TINY), str(fake_saved_model))


# --------------------------------------------------------------------------- error paths

def test_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "nowhere" / "Directx2")
    with pytest.raises(CheckpointError, match=rf"no checkpoint at {missing}: {missing}\.index does not exist"):
        load_weights(MZSRNet(TINY), missing)
    with pytest.raises(CheckpointError, match=r"no checkpoint at"):
        read_tf1_weights(missing)


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG not a checkpoint")
    with pytest.raises(CheckpointError, match=rf"{image} is not a TensorFlow checkpoint: expected a prefix P"):
        load_weights(MZSRNet(TINY), str(image))


def test_corrupt_index(tmp_path):
    (tmp_path / "broken.index").write_bytes(b"garbage")
    (tmp_path / "broken.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"broken\.index is not a readable TensorFlow checkpoint index \("):
        load_weights(MZSRNet(TINY), str(tmp_path / "broken"))


def test_index_without_data_file(tmp_path, model_layout_checkpoint):
    prefix, _ = model_layout_checkpoint
    os.remove(prefix + ".data-00000-of-00001")
    with pytest.raises(CheckpointError, match=r"is incomplete: .*Directx2\.index exists but its data file "
                                              r".*Directx2\.data-00000-of-00001 is missing"):
        load_weights(MZSRNet(), prefix)


def test_published_index_alone_is_incomplete(reference_dir):
    with pytest.raises(CheckpointError, match=r"Model/Directx2\.data-00000-of-00001 is missing \(a checkpoint is "
                                              r"copied as all its files"):
        load_weights(MZSRNet(), str(reference_dir / "Model" / "Directx2"))


def test_truncated_data_file(model_layout_checkpoint):
    prefix, _ = model_layout_checkpoint
    data = prefix + ".data-00000-of-00001"
    with open(data, "rb") as f:
        head = f.read(1000)
    with open(data, "wb") as f:
        f.write(head)
    model = MZSRNet()
    before = weights_of(model)
    with pytest.raises(CheckpointError, match=r"could not read MODEL/conv\d/\w+ from its data file; the file is "
                                              r"corrupt or truncated"):
        load_weights(model, prefix)
    for old, variable in zip(before, model.trainable_variables):  # nothing was assigned
        np.testing.assert_array_equal(old, variable.numpy())


def test_missing_weight_lists_expected_and_found(tmp_path):
    values = random_values(model_layout())
    del values["MODEL/conv7/kernel"]
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "partial"), values)
    with pytest.raises(CheckpointError) as caught:
        load_weights(MZSRNet(), prefix)
    message = str(caught.value)
    assert f"checkpoint {prefix} is missing 1 of the 16 MZSR weight tensors: missing MODEL/conv7/kernel." in message
    assert "Expected: MODEL/conv1/kernel [3, 3, 3, 64], MODEL/conv1/bias [64]," in message
    found = message.split("Found: ")[1]
    assert "MODEL/conv6/kernel [3, 3, 64, 64]" in found and "MODEL/conv7/kernel " not in found
    assert "Adam" not in found and "(+ 70 optimizer/bookkeeping variables not listed)" in found


def test_misshaped_weight(tmp_path):
    values = {name: np.zeros(shape, np.float32) for name, shape in param_shapes().items()}
    values["MODEL/conv2/kernel"] = np.zeros((3, 3, 64, 32), np.float32)
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "wide"), values)
    with pytest.raises(CheckpointError, match=r"does not fit this network \(1 mis-shaped tensor\(s\)\): "
                                              r"MODEL/conv2/kernel has shape \[3, 3, 64, 32\], expected "
                                              r"\[3, 3, 64, 64\]\. Expected: .* Found: .*MODEL/conv2/kernel "
                                              r"\[3, 3, 64, 32\]"):
        read_tf1_weights(prefix)


def test_weights_of_a_narrower_network_do_not_fit(tmp_path):
    prefix = checkpoints.export_weights(MZSRNet(ModelConfig(width=4)), str(tmp_path / "narrow"))
    with pytest.raises(CheckpointError, match=r"\(15 mis-shaped tensor\(s\)\): MODEL/conv1/kernel has shape "
                                              r"\[3, 3, 3, 4\], expected \[3, 3, 3, 64\]"):
        load_weights(MZSRNet(), prefix)


def test_integer_weight(tmp_path):
    values = {name: np.zeros(shape, np.float32) for name, shape in param_shapes(TINY).items()}
    values["MODEL/conv3/bias"] = np.zeros(3, np.int32)
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "ints"), values)
    with pytest.raises(CheckpointError, match=r"MODEL/conv3/bias has dtype int32, expected a floating-point"):
        load_weights(MZSRNet(TINY), prefix)


def test_non_finite_weight(tmp_path):
    values = {name: np.zeros(shape, np.float32) for name, shape in param_shapes(TINY).items()}
    values["MODEL/conv2/kernel"][0, 0, 0, 0] = np.nan
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "nan"), values)
    with pytest.raises(CheckpointError, match=r"MODEL/conv2/kernel contains NaN or Inf values"):
        load_weights(MZSRNet(TINY), prefix)


def test_checkpoint_of_another_network(tmp_path):
    prefix = write_tf1_checkpoint(str(tmp_path / "ckpt" / "other"),
                                  {"generator/conv1/w": np.zeros((3, 3, 3, 8), np.float32)})
    _both_readers_refuse(prefix, r"holds neither the MZSR weights under their reference names nor a TF2 object "
                                 r"graph\. Expected: MODEL/conv1/kernel \[3, 3, 3, 4\].* Found: generator/conv1/w "
                                 r"\[3, 3, 3, 8\]",
                         r"is missing 6 of the 6 MZSR weight tensors: .*Found: generator/conv1/w")


def _both_readers_refuse(prefix, load_message, read_message):
    """``load_weights`` and ``read_tf1_weights`` each refuse ``prefix`` with a ``CheckpointError`` matching theirs."""
    with pytest.raises(CheckpointError, match=load_message):
        load_weights(MZSRNet(TINY), prefix)
    with pytest.raises(CheckpointError, match=read_message):
        read_tf1_weights(prefix, TINY)


def test_tf2_checkpoint_without_a_model(tmp_path):
    prefix = tf.train.Checkpoint(net=MZSRNet(TINY), counter=tf.Variable(1)).write(str(tmp_path / "net"))
    _both_readers_refuse(prefix, r"TF2 checkpoint .*net has no 'model' object .*its top-level objects are: counter, net",
                         r"missing 6 of the 6 .*\(it looks like a TF2 object-based checkpoint; read it with "
                         r"load_weights\)")


def test_tf2_checkpoint_of_another_shape(tmp_path):
    prefix = tf.train.Checkpoint(model=MZSRNet(TINY)).write(str(tmp_path / "tiny"))
    model = MZSRNet(ModelConfig(width=6, depth=3), seed=0)
    before = weights_of(model)
    with pytest.raises(CheckpointError, match=r"TF2 checkpoint .*tiny does not hold this network's weights "
                                              r"\(Received incompatible tensor with shape \(3, 3, 3, 4\).*\)\. "
                                              r"Expected: MODEL/conv1/kernel \[3, 3, 3, 6\].* Found under "
                                              r"'model': model/.*\[3, 3, 3, 4\]"):
        load_weights(model, prefix)
    for old, variable in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())
    deeper = MZSRNet(ModelConfig(width=4, depth=4))
    with pytest.raises(CheckpointError, match=r"does not hold this network's weights"):
        load_weights(deeper, prefix)


def test_tf2_error_lists_the_networks_variables_even_when_an_optimizer_was_saved(tmp_path):
    # With an optimizer in the checkpoint, the network's variables are keyed by the optimizer's shorter
    # path (optimizer/_trainable_variables/i); the message still shows them under 'model'.
    model, optimizer = MZSRNet(TINY), keras.optimizers.Adam()
    adam_steps(model, optimizer, 1)
    prefix = checkpoints.save_checkpoint(checkpoints.make_manager(str(tmp_path), model=model, optimizer=optimizer))
    with pytest.raises(CheckpointError, match=r"Found under 'model': model/\S+ \[3, 3, 3, 4\], model/\S+ \[4\], "):
        load_weights(MZSRNet(ModelConfig(width=6, depth=3)), prefix)


# --------------------------------------------------------------------------- TF2 save / restore / resume

def adam_steps(model, optimizer, count, seed=0):
    x = random_image(seed, (2, 8, 8, 3))
    for _ in range(count):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(x) - 0.5))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))


def test_save_and_resume_continue_exactly(tmp_path):
    model, optimizer = MZSRNet(TINY, seed=0), keras.optimizers.Adam(1e-2)
    generator = tf.random.Generator.from_seed(3)
    manager = checkpoints.make_manager(str(tmp_path), max_to_keep=2, model=model, optimizer=optimizer,
                                       generator=generator)
    adam_steps(model, optimizer, 3)
    manager.checkpoint.step.assign(3)
    saved = checkpoints.save_checkpoint(manager)
    assert saved == str(tmp_path / "ckpt-3")
    adam_steps(model, optimizer, 2, seed=1)
    straight, draws = weights_of(model), generator.normal([4]).numpy()

    fresh, fresh_optimizer = MZSRNet(TINY, seed=9), keras.optimizers.Adam(1e-2)
    fresh_generator = tf.random.Generator.from_seed(99)
    resumed = checkpoints.make_manager(str(tmp_path), max_to_keep=2, model=fresh, optimizer=fresh_optimizer,
                                       generator=fresh_generator)
    assert checkpoints.restore_latest(resumed) == saved
    assert int(resumed.checkpoint.step.numpy()) == 3
    assert int(fresh_optimizer.iterations.numpy()) == 3
    adam_steps(fresh, fresh_optimizer, 2, seed=1)
    for expected, got in zip(straight, weights_of(fresh)):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(fresh_generator.normal([4]).numpy(), draws)


def test_manager_keeps_a_bounded_number(tmp_path):
    manager = checkpoints.make_manager(str(tmp_path), max_to_keep=2, model=MZSRNet(TINY))
    for step in (1, 2, 3):
        manager.checkpoint.step.assign(step)
        checkpoints.save_checkpoint(manager)
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-2", "ckpt-3"]
    assert sorted(p.name for p in tmp_path.glob("*.index")) == ["ckpt-2.index", "ckpt-3.index"]


def test_restore_latest_without_checkpoints_starts_fresh(tmp_path):
    manager = checkpoints.make_manager(str(tmp_path / "new"), model=MZSRNet(TINY))
    assert checkpoints.restore_latest(manager) is None
    assert int(manager.checkpoint.step.numpy()) == 0


def test_restore_latest_of_another_network_is_a_clear_error(tmp_path):
    checkpoints.save_checkpoint(checkpoints.make_manager(str(tmp_path), model=MZSRNet(TINY)))
    other = checkpoints.make_manager(str(tmp_path), model=MZSRNet(ModelConfig(width=4, depth=4)))
    with pytest.raises(CheckpointError, match=r"cannot resume from .*ckpt-0: it does not match what is being "
                                              r"restored \(Received incompatible tensor"):
        checkpoints.restore_latest(other)
    extra = checkpoints.make_manager(str(tmp_path), model=MZSRNet(TINY), counter=tf.Variable(0, name="counter"))
    with pytest.raises(CheckpointError, match=r"cannot resume from .*ckpt-0: .*\(1 variable\(s\) not found in "
                                              r"the checkpoint: counter:0 \[\]\)"):
        checkpoints.restore_latest(extra)


def test_a_given_step_counter_is_used(tmp_path):
    step = tf.Variable(7, dtype=tf.int64)
    assert checkpoints.make_manager(str(tmp_path), step=step, model=MZSRNet(TINY)).checkpoint.step is step


def test_load_weights_from_a_training_directory(tmp_path, caplog):
    model = MZSRNet(TINY, seed=0)
    manager = checkpoints.make_manager(str(tmp_path), model=model, optimizer=keras.optimizers.Adam())
    adam_steps(model, manager.checkpoint.optimizer, 1)
    manager.checkpoint.step.assign(1)
    checkpoints.save_checkpoint(manager)
    other = MZSRNet(TINY, seed=1)
    with caplog.at_level(logging.INFO, logger="mzsr_tf.checkpoints"):
        assert load_weights(other, str(tmp_path)) == str(tmp_path / "ckpt-1")
    assert "[object-based (TF2 tf.train.Checkpoint)]" in caplog.text
    for expected, got in zip(weights_of(model), weights_of(other)):
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------- exports and round trips

def test_exported_weights_hold_only_the_reference_names_and_load_in_tf1(tmp_path):
    model = MZSRNet(seed=4)
    prefix = checkpoints.export_weights(model, str(tmp_path / "ship" / "weights"))
    assert sorted(k for k, _ in tf.train.list_variables(prefix)) == sorted(PARAM_NAMES)
    size = sum(os.path.getsize(p) for p in tmp_path.glob("ship/weights.*"))
    assert size < 1.0e6  # 225,091 float32 values and a small index
    # The reference's own loader: TF1 variables named MODEL/conv*/..., restored by a Saver.
    graph = tf.Graph()
    with graph.as_default():
        with tf.compat.v1.variable_scope("MODEL"):
            variables = [tf.compat.v1.get_variable(name[len("MODEL/"):], shape, tf.float32)
                         for name, shape in param_shapes().items()]
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            restored = session.run(variables)
    for expected, got in zip(weights_of(model), restored):
        np.testing.assert_array_equal(got, expected)


def test_round_trip_tf1_tf2_weights_saved_model_gives_identical_outputs(tmp_path, model_layout_checkpoint):
    prefix, _ = model_layout_checkpoint
    x = random_image(5)
    from_tf1 = MZSRNet()
    load_weights(from_tf1, prefix)
    expected = from_tf1(x).numpy()

    manager = checkpoints.make_manager(str(tmp_path / "tf2"), model=from_tf1)
    tf2_prefix = checkpoints.save_checkpoint(manager)
    from_tf2 = MZSRNet(seed=1)
    load_weights(from_tf2, tf2_prefix)
    np.testing.assert_array_equal(from_tf2(x).numpy(), expected)

    weights_prefix = checkpoints.export_weights(from_tf2, str(tmp_path / "weights" / "Directx2"))
    from_weights = MZSRNet(seed=2)
    load_weights(from_weights, weights_prefix)
    np.testing.assert_array_equal(from_weights(x).numpy(), expected)

    directory = checkpoints.export_saved_model(from_weights, str(tmp_path / "saved"))
    served = tf.saved_model.load(directory).signatures["serving_default"](ilr=x)["sr"].numpy()
    np.testing.assert_array_equal(served, np.clip(expected, 0.0, 1.0))
    assert 0 < np.mean((expected < 0) | (expected > 1))  # the clip was exercised
    from_saved = MZSRNet(seed=3)
    load_weights(from_saved, directory)
    np.testing.assert_array_equal(from_saved(x).numpy(), expected)


def test_saved_model_computes_in_float32_even_if_exported_under_mixed_precision(tmp_path):
    model = MZSRNet(TINY, seed=0)
    x = random_image(6, (1, 9, 10, 3))
    expected = np.clip(model(x).numpy(), 0, 1)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        directory = checkpoints.export_saved_model(model, str(tmp_path / "saved"))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    served = tf.saved_model.load(directory).signatures["serving_default"](ilr=x)["sr"].numpy()
    np.testing.assert_array_equal(served, expected)


def test_weights_only_export_is_smaller_than_a_training_checkpoint(tmp_path):
    model, optimizer = MZSRNet(), keras.optimizers.Adam()
    adam_steps(model, optimizer, 1)
    checkpoints.save_checkpoint(checkpoints.make_manager(str(tmp_path / "train"), model=model, optimizer=optimizer))
    checkpoints.export_weights(model, str(tmp_path / "ship" / "w"))
    train_size = sum(p.stat().st_size for p in (tmp_path / "train").glob("ckpt-0.*"))
    ship_size = sum(p.stat().st_size for p in (tmp_path / "ship").glob("w.*"))
    assert ship_size * 2.5 < train_size


def test_resolve_transfer_prefers_the_authors_pretrained_then_the_projects(tmp_path):
    from mzsr_tf.checkpoints import resolve_transfer
    from mzsr_tf.config import TRANSFER_AUTO
    with pytest.raises(CheckpointError, match=r"checkpoints/Pretrained/Pretrained and "
                                              r"checkpoints/pretrained_x2/pretrained_x2 .*--transfer none"):
        resolve_transfer(TRANSFER_AUTO, str(tmp_path))
    for name in ("pretrained_x2/pretrained_x2", "Pretrained/Pretrained"):  # ours, then the authors' beside it
        prefix = tmp_path / "checkpoints" / name
        prefix.parent.mkdir(parents=True)
        (tmp_path / "checkpoints" / (name + ".index")).write_bytes(b"")
        assert resolve_transfer(TRANSFER_AUTO, str(tmp_path)) == str(prefix)
    assert resolve_transfer("some/prefix", str(tmp_path)) == "some/prefix"
    assert resolve_transfer(None, str(tmp_path)) is None
