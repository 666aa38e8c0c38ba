"""Tests of bicubic pretraining: the learning-rate schedule, the step, a resumable run, the CLI."""
import argparse

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import pretrain
from mzsr_tf import cli
from mzsr_tf.config import ModelConfig, PretrainConfig, RunConfig, RuntimeConfig
from mzsr_tf.model import MZSRNet

TINY_MODEL = ModelConfig(width=4, depth=3)


@pytest.mark.parametrize("step, rate", [
    # the reference: exponential_decay(4e-4, step, 100000, 0.5, staircase=True), floored at 1e-4
    (0, 4e-4), (99_999, 4e-4), (100_000, 2e-4), (199_999, 2e-4), (200_000, 1e-4), (300_000, 1e-4),
    (1_000_000, 1e-4),
])
def test_learning_rate_schedule(step, rate):
    assert pretrain.learning_rate_at(step, PretrainConfig()).numpy() == pytest.approx(rate, rel=1e-6)


def _hand_forward(params, x):
    h = x
    for i in range(len(params) // 2):
        h = tf.nn.conv2d(h, params[2 * i], 1, "SAME") + params[2 * i + 1]
        if i < len(params) // 2 - 1:
            h = tf.nn.relu(h)
    return x + h


def _tiny_config(**overrides):
    values = dict(patch_size=8, scale=2, batch_size=4, max_steps=4, print_every=2, save_every=2,
                  shuffle_buffer=4, seed=5)
    values.update(overrides)
    return PretrainConfig(**values)


def test_train_step_is_adam_on_the_l1_loss():
    trainer = pretrain.Pretrainer(RunConfig(model=TINY_MODEL, train=_tiny_config()))
    rng = np.random.default_rng(0)
    ilr, hr = (tf.constant(rng.uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)) for _ in range(2))
    before = [v.numpy().astype(np.float64) for v in trainer.model.trainable_variables]
    params = [tf.constant(w) for w in before]
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = tf.reduce_mean(tf.abs(tf.cast(hr, tf.float64) - _hand_forward(params, tf.cast(ilr, tf.float64))))
    grads = tape.gradient(loss, params)
    metrics = trainer.train_step((ilr, hr))
    assert metrics["loss"] == pytest.approx(loss.numpy(), rel=1e-5)
    assert metrics["learning_rate"] == pytest.approx(4e-4)
    for old, new, g in zip(before, trainer.model.trainable_variables, grads):
        # first Adam step: -lr g / (|g| + eps / sqrt(1 - beta2)), eps = 1e-8
        g = g.numpy()
        np.testing.assert_allclose(new.numpy() - old, -4e-4 * g / (np.abs(g) + 1e-8 / np.sqrt(1e-3)),
                                   rtol=1e-3, atol=1e-9)
    trainer.step.assign(250_000)
    assert trainer.train_step((ilr, hr))["learning_rate"] == pytest.approx(1e-4)


def _pairs(count=16, seed=0):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    lr = rng.integers(0, 256, (count, 4, 4, 3), dtype=np.uint8)
    return tf.data.Dataset.from_tensor_slices((hr, lr))


def _weights(directory):
    model = MZSRNet(TINY_MODEL)
    from mzsr_tf.checkpoints import load_weights
    load_weights(model, str(directory))
    return [v.numpy() for v in model.trainable_variables]


def test_run_resumes_exactly(tmp_path):
    def run(max_steps=4):
        return RunConfig(model=TINY_MODEL, train=_tiny_config(max_steps=max_steps))

    straight = pretrain.run_pretraining(run(), str(tmp_path / "a"), source=_pairs())
    assert (straight.status, straight.step) == ("done", 4)
    pretrain.run_pretraining(run(2), str(tmp_path / "b"), source=_pairs())
    resumed = pretrain.run_pretraining(run(), str(tmp_path / "b"), source=_pairs(), requested_step=2)
    assert resumed.step == 4
    for a, b in zip(_weights(tmp_path / "a"), _weights(tmp_path / "b")):
        np.testing.assert_array_equal(a, b)
    tags = set()
    for events in (tmp_path / "b" / "logs").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    assert {"loss", "learning_rate", "1. Input", "2. Output", "3. Label"} <= tags


def test_mixed_float16_step_is_finite():
    trainer = pretrain.Pretrainer(RunConfig(model=TINY_MODEL, train=_tiny_config(), runtime=RuntimeConfig(precision="mixed_float16")))
    batch = tuple(tf.random.stateless_uniform([4, 8, 8, 3], seed=[1, i]) for i in range(2))
    for _ in range(3):
        assert np.isfinite(trainer.train_step(batch)["loss"])


def _flags(tmp_path, **values):
    defaults = dict(trial=0, step=None, config=None, tfrecord=str(tmp_path / "missing.tfrecord"),
                    iterations=2, checkpoint_dir=str(tmp_path / "runs"), print_every=None,
                    save_every=None, precision="float32", strategy="default")
    defaults.update(values)
    return argparse.Namespace(**defaults)


def test_cli_bad_inputs(tmp_path, capsys):
    assert cli.pretrain_from_flags(_flags(tmp_path)) == 2
    assert "missing.tfrecord: record file not found" in capsys.readouterr().err
    overrides = tmp_path / "c.json"
    overrides.write_text('{"batch_size": 3, "lr": 1e-3, "learning_rate": 1}')
    assert cli.pretrain_from_flags(_flags(tmp_path, config=str(overrides))) == 2
    assert "unknown PretrainConfig option(s): learning_rate" in capsys.readouterr().err
