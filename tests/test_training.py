"""Tests of the shared training loop: saving, signals, the NaN stop, resume checks, summaries."""
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf.config import PretrainConfig, RunConfig
from mzsr_tf import training
from mzsr_tf.training import (LoopSettings, NonFiniteLossError, ResumeError, RunState, SignalGuard,
                              run_loop)


class _Counter:
    """A stand-in 'training step': adds the batch to a weight and advances the step."""

    def __init__(self, nan_at=None, on_step=None):
        self.step = tf.Variable(0, dtype=tf.int64)
        self.weight = tf.Variable(0.0)
        self.nan_at = nan_at
        self.on_step = on_step

    def __call__(self, batch):
        self.weight.assign_add(float(batch))
        self.step.assign_add(1)
        step = int(self.step.numpy())
        if self.on_step:
            self.on_step(step)
        loss = np.float32(np.nan) if step == self.nan_at else np.float32(1.0 / step)
        return {"loss": loss, "losses": np.array([loss, 0.5], np.float32)}


def _state(directory, counter, max_to_keep=10):
    return RunState(str(directory), RunConfig(train=PretrainConfig()), counter.step, max_to_keep,
                    weights=tf.train.Checkpoint(w=counter.weight))


def _batches():
    value = 0
    while True:
        value += 1
        yield value


def _saved_steps(directory):
    return sorted(int(p.name[len("ckpt-"):-len(".index")]) for p in directory.glob("ckpt-*.index"))


def test_loop_saves_every_save_every_and_at_the_end(tmp_path):
    counter = _Counter()
    reports = []
    result = run_loop(counter, _batches(), _state(tmp_path, counter), LoopSettings(7, 2, 3),
                      lambda step, metrics, batch: reports.append((step, batch)))
    assert (result.status, result.step) == ("done", 7)
    assert _saved_steps(tmp_path) == [3, 6, 7]
    assert [r[0] for r in reports] == [2, 4, 6] and [r[1] for r in reports] == [2, 4, 6]
    assert counter.weight.numpy() == sum(range(1, 8))


def test_max_to_keep_bounds_the_checkpoints(tmp_path):
    counter = _Counter()
    run_loop(counter, _batches(), _state(tmp_path, counter, max_to_keep=2), LoopSettings(5, 10, 1),
             lambda *_: None)
    assert _saved_steps(tmp_path) == [4, 5]


def test_a_signal_during_a_step_saves_after_it_and_stops(tmp_path):
    counter = _Counter()
    with SignalGuard() as guard:
        counter.on_step = lambda step: step == 2 and os.kill(os.getpid(), signal.SIGTERM)
        result = run_loop(counter, _batches(), _state(tmp_path, counter), LoopSettings(100, 50, 50),
                          lambda *_: None, guard)
    assert guard.requested == "SIGTERM"
    assert (result.status, result.step) == ("interrupted", 2)
    assert _saved_steps(tmp_path) == [2]
    assert signal.getsignal(signal.SIGTERM) is not guard.request_stop  # handler restored


def test_a_second_signal_stops_at_once():
    guard = SignalGuard()
    guard.request_stop(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="second SIGINT: stopping without saving"):
        guard.request_stop(signal.SIGINT)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    counter = _Counter(nan_at=5)
    with pytest.raises(NonFiniteLossError,
                       match=r"non-finite loss at step 5 \(loss=nan, losses=\[nan 0.5\]\): training stopped "
                             r"without saving; the last good checkpoint is .*ckpt-4"):
        run_loop(counter, _batches(), _state(tmp_path, counter), LoopSettings(100, 10, 2), lambda *_: None)
    assert _saved_steps(tmp_path) == [2, 4]


def test_resume_restores_and_checks_the_step(tmp_path):
    counter = _Counter()
    run_loop(counter, _batches(), _state(tmp_path, counter), LoopSettings(3, 10, 10), lambda *_: None)
    again = _Counter()
    state = _state(tmp_path, again)
    assert state.resume(None).endswith("ckpt-3")
    assert int(again.step.numpy()) == 3 and again.weight.numpy() == 6.0
    with pytest.raises(ResumeError, match=r"--step 1 does not match the latest checkpoint .*ckpt-3 \(step 3\); "
                                          r"pass --step 3 or omit --step"):
        _state(tmp_path, _Counter()).resume(1)
    with pytest.raises(ResumeError, match=r"--step 2: .*other holds no checkpoint to resume"):
        _state(tmp_path / "other", _Counter()).resume(2)
    assert _state(tmp_path / "fresh", _Counter()).resume(0) is None


def test_config_is_saved_beside_the_checkpoints(tmp_path):
    counter = _Counter()
    state = _state(tmp_path, counter)
    path = state.write_config()
    from mzsr_tf.config import load_config
    assert load_config(path, PretrainConfig) == PretrainConfig()
    # One file holds the whole run (model, stage, runtime); the older run.json is no longer written.
    assert load_config(path, RunConfig) == RunConfig(train=PretrainConfig())
    assert not (tmp_path / "run.json").exists()


def test_summaries_are_readable_tensorboard_events(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    training.write_scalars(writer, 7, {"loss/a": 0.25})
    image = tf.reshape(tf.linspace(0.0, 1.0, 2 * 4 * 6 * 3), [2, 4, 6, 3])
    training.write_images(writer, 7, {"img": image})
    found = {}
    for events in tmp_path.iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                found[value.tag] = (event.step, value.metadata.plugin_data.plugin_name,
                                    tf.make_ndarray(value.tensor))
    assert found["loss/a"][:2] == (7, "scalars") and found["loss/a"][2] == np.float32(0.25)
    step, plugin, tensor = found["img"]
    assert (step, plugin, tensor[0], tensor[1]) == (7, "images", b"6", b"4")  # width, height, PNGs
    decoded = tf.io.decode_png(tensor[3]).numpy()
    np.testing.assert_array_equal(decoded, np.round(image[1].numpy() * 255).astype(np.uint8))


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'mirror'; choose one of default, mirrored, multiworker"):
        training.make_strategy("mirror")
    with pytest.raises(ValueError, match="precision must be one of float32, mixed_float16, mixed_bfloat16, got 'float16'"):
        training.check_precision("float16")
    with pytest.raises(ValueError, match="save_every must be >= 1, got 0"):
        LoopSettings(10, 1, 0)


def test_split_across_replicas_without_distribution_is_identity():
    batch = {"x": tf.ones([4, 2])}
    assert training.split_across_replicas(tf.distribute.get_strategy(), batch) is batch
