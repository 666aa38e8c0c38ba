"""A run folder belongs to one run: another configuration is refused before anything is written, and
two live processes cannot train in it (a lock the operating system drops with a crashed process)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import meta_train
from mzsr_tf.config import MetaTrainConfig, ModelConfig, RunConfig, RuntimeConfig
from mzsr_tf.training import ResumeError, RunLock

TINY = ModelConfig(width=4, depth=3)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(**train):
    values = dict(patch_size=8, meta_batch_size=2, task_batch_size=2, inner_steps=2, meta_iter=2,
                  transfer_checkpoint=None, shuffle_buffer=8, print_every=1, save_every=1)
    values.update(train)
    return RunConfig(model=TINY, train=MetaTrainConfig(**values))


def _patches():
    patches = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    return tf.data.Dataset.from_tensor_slices(patches)


def _snapshot(directory):
    return {name: os.path.getmtime(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
            if name != "logs"}


def test_resuming_with_another_configuration_is_refused_before_writing(tmp_path):
    directory = str(tmp_path / "Model1")
    meta_train.run_meta_training(_run(), directory, source=_patches())
    before = _snapshot(directory)
    saved_config = (tmp_path / "Model1" / "config.json").read_text()
    with pytest.raises(ResumeError, match=r"holds a run with another configuration \(train\.inner_steps 2 -> 3, "
                                          r"train\.task_batch_size 2 -> 4\); resume it with its own"):
        meta_train.run_meta_training(_run(inner_steps=3, task_batch_size=4, meta_iter=4), directory,
                                     source=_patches())
    with pytest.raises(ResumeError, match=r"runtime\.precision 'float32' -> 'mixed_bfloat16'"):
        meta_train.run_meta_training(RunConfig(model=TINY, train=_run().train,
                                               runtime=RuntimeConfig(precision="mixed_bfloat16")),
                                     directory, source=_patches())
    assert _snapshot(directory) == before
    assert (tmp_path / "Model1" / "config.json").read_text() == saved_config
    # how long it runs, how often it saves, where its files are: those may change on resume
    resumed = meta_train.run_meta_training(_run(meta_iter=3, save_every=3, print_every=3), directory,
                                           source=_patches())
    assert resumed.step == 3
    assert json.loads((tmp_path / "Model1" / "config.json").read_text())["values"]["train"]["meta_iter"] == 3


def test_a_folder_in_use_is_refused(tmp_path):
    directory = str(tmp_path / "Model1")
    with RunLock(directory):
        with pytest.raises(ResumeError, match=rf"{directory} is in use by a running training \(pid {os.getpid()}\)"):
            meta_train.run_meta_training(_run(), directory, source=_patches())
    assert not any(name.startswith("ckpt-") for name in os.listdir(directory))
    assert meta_train.run_meta_training(_run(), directory, source=_patches()).step == 2  # released


def test_a_killed_process_leaves_no_stale_lock(tmp_path):
    directory = str(tmp_path / "Model1")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
                               "from mzsr_tf.training import RunLock; lock = RunLock(sys.argv[2]).acquire(); "
                               "print('locked', flush=True); time.sleep(600)", REPO_ROOT, directory],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResumeError, match=rf"in use by a running training \(pid {holder.pid}\)"):
            RunLock(directory).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    RunLock(directory).acquire().release()  # the crashed holder's lock is gone
