"""Multi-worker meta-training for real: two worker processes on loopback ports.

``test_two_workers_train_as_one_process_and_survive_a_lost_worker`` drives ``scripts/main.py --train
--strategy multiworker`` in two processes with their own ``TF_CONFIG`` (MultiWorkerMirroredStrategy,
gRPC on 127.0.0.1), beside a single-process run (``--strategy default``) on the same configuration
and records, hence the same meta-batches:

- both workers hold bitwise the same weights and Adam state (each applies the same all-reduced
  gradient), equal to the single-process run's to float rounding;
- only the chief (worker 0) writes into the run folder; worker 1 writes into a temporary folder;
- SIGKILL of worker 1 stops worker 0 at once with a one-line error (exit 1, no traceback);
- the run then resumes from its last checkpoint in one process (``--strategy default``, which a
  resume may change) and ends with the single-process run's weights.

A tiny network (width 8, depth 3, through a ``RunConfig`` ``--config``) keeps the graphs small:
tracing, not computing, is what costs time here.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import training
from mzsr_tf.config import ModelConfig, PretrainConfig, RunConfig, RuntimeConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(REPO_ROOT, "scripts", "main.py")
RUN_CONFIG = {"class": "RunConfig", "values": {
    "model": {"width": 8, "depth": 3},
    "train": {"patch_size": 8, "meta_batch_size": 2, "task_batch_size": 2, "inner_steps": 2,
              "shuffle_buffer": 8, "save_every": 2, "max_to_keep": 100, "print_every": 1,
              "transfer_checkpoint": None}}}
REFERENCE_STEPS = 12
KILL_AFTER = 6  # worker 1 is killed once it has logged this iteration
STARTUP_TIMEOUT = 150  # seconds for a process to import TensorFlow, trace and reach an iteration
DETECTION_TIMEOUT = 30  # seconds from the kill to the survivor's error line (heartbeat: 10 s)
# After its error line the survivor still frees its tf.data iterator, and TensorFlow 2.21 may then
# wait for the iterator's autotuning thread to sleep out its period (which doubles up to 60 s) when
# the iterator's state was checkpointed: seconds here, never more than a minute.
EXIT_TIMEOUT = 90
# Float tolerance of the multi-worker weights against the single-process run's, per tensor,
# relative to its largest magnitude.  Each worker's replica computes one task's gradient and the
# all-reduce adds the two; the single process adds the same two gradients in its task loop.  IEEE
# addition is commutative (and adding to zero exact), so the results are expected to be bitwise
# equal; 1e-6 allows a few float32 ulps (epsilon 1.2e-7) should a collective split the sums
# differently, and is 100x below what two Adam steps (lr 1e-4) move the weights.
RELATIVE_TOLERANCE = 1e-6


# --------------------------------------------------------------------------- helpers

def _write_tiny_records(path, count=24, size=8):
    from mzsr_tf.data.records import write_records
    patches = np.random.default_rng(2).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    write_records(str(path), [{"label": patches}], total=count)


def _free_ports(count):
    """``count`` distinct free loopback ports (held together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class _Process:
    """A subprocess whose stdout and stderr lines are collected (with arrival times) by threads."""

    def __init__(self, name, command, env, cwd):
        self.name = name
        self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env, cwd=cwd)
        self.lines = {"out": [], "err": []}
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, key), daemon=True)
                         for stream, key in ((self.popen.stdout, "out"), (self.popen.stderr, "err"))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, key):
        for line in stream:
            with self._changed:
                self.lines[key].append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self.lines[key].append((time.monotonic(), None))  # end of stream
            self._changed.notify_all()

    def text(self, key="out"):
        return "\n".join(line for _, line in self.lines[key] if line is not None)

    def wait_for(self, pattern, timeout, key="out"):
        """``(arrival time, line)`` of the first line matching ``pattern``; fails after ``timeout``
        seconds or when the stream ends without one."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self._changed:
            while True:
                for arrived, line in self.lines[key]:
                    if line is None:
                        pytest.fail(f"{self.name} ended (exit {self.popen.poll()}) without a line "
                                    f"matching {pattern!r}:\n{self.text('out')[-3000:]}\n"
                                    f"{self.text('err')[-3000:]}")
                    if regex.search(line):
                        return arrived, line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{self.name}: no line matching {pattern!r} within {timeout} s:\n"
                                f"{self.text('out')[-3000:]}\n{self.text('err')[-3000:]}")
                self._changed.wait(min(remaining, 1.0))

    def finish(self, timeout):
        """The exit code, within ``timeout`` seconds (fails otherwise)."""
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout} s:\n{self.text('out')[-3000:]}\n"
                        f"{self.text('err')[-3000:]}")
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def _environment(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    for name in ("TF_CONFIG", "MZSR_WORKER_TIMEOUT", "MZSR_COLLECTIVE_TIMEOUT"):
        if name not in extra:
            env.pop(name, None)
    return env


def _tensors(prefix):
    """Every numeric tensor of a checkpoint (the data iterator's state and the object graph aside)."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {key: reader.get_tensor(key) for key, dtype in reader.get_variable_to_dtype_map().items()
            if dtype.is_floating or dtype.is_integer}


def _assert_same(actual, expected, relative=0.0, what=""):
    assert sorted(actual) == sorted(expected), what
    for key, value in expected.items():
        bound = relative * float(np.max(np.abs(value))) if value.size else 0.0
        difference = float(np.max(np.abs(actual[key].astype(np.float64) - value))) if value.size else 0.0
        assert difference <= bound, f"{what}: {key} differs by {difference:g} (bound {bound:g})"


def _weights(tensors):
    return {k: v for k, v in tensors.items() if k.startswith("optimizer/_trainable_variables/")}


def _events_pids(logs):
    """The process ids in the TensorBoard event file names of ``logs``
    (``events.out.tfevents.<time>.<host>.<pid>.<n>.v2``)."""
    return {int(name.split(".")[-3]) for name in os.listdir(logs) if name.startswith("events.out.")}


def _saved(lines):
    return re.findall(r"^saved checkpoint (\S+) \(step (\d+)\)$", lines, flags=re.M)


# --------------------------------------------------------------------------- the end-to-end test

@pytest.mark.slow
def test_two_workers_train_as_one_process_and_survive_a_lost_worker(tmp_path):
    records = tmp_path / "tiny.tfrecord"
    _write_tiny_records(records)
    config = tmp_path / "run.json"
    config.write_text(json.dumps(RUN_CONFIG))
    runs, reference_runs = tmp_path / "runs", tmp_path / "reference"
    scratch = {i: tmp_path / f"tmp{i}" for i in range(2)}
    for folder in scratch.values():
        folder.mkdir()
    base = [sys.executable, MAIN, "--train", "--tfrecord", str(records), "--transfer", "none"]
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    try:
        reference = _Process("single process", base + [
            "--config", str(config), "--checkpoint-dir", str(reference_runs),
            "--iterations", str(REFERENCE_STEPS), "--strategy", "default"], _environment(), str(tmp_path))
        processes.append(reference)
        workers = []
        for index in range(2):
            env = _environment(TF_CONFIG=json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": index}}),
                               TMPDIR=str(scratch[index]), MZSR_WORKER_TIMEOUT="10",
                               MZSR_COLLECTIVE_TIMEOUT="60")
            workers.append(_Process(f"worker {index}", base + [
                "--config", str(config), "--checkpoint-dir", str(runs), "--iterations", "100000",
                "--strategy", "multiworker"], env, str(tmp_path)))
        processes += workers
        chief, other = workers

        # -- a few meta-iterations, then worker 1 is killed
        other.wait_for(rf"^Iteration: {KILL_AFTER} ", STARTUP_TIMEOUT)
        other.popen.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert other.finish(30) == -signal.SIGKILL
        error_at, error = chief.wait_for(r"^error: ", DETECTION_TIMEOUT, key="err")
        assert error_at - killed_at < DETECTION_TIMEOUT

        # -- the run folder holds the chief's files only (checked before the resume writes more)
        run = runs / "Model0"
        saved_steps = sorted(int(p.name[5:-6]) for p in run.glob("ckpt-*.index"))
        last = saved_steps[-1]
        # The chief may still be in the step worker 1 finished last (its collectives end later).
        assert saved_steps == list(range(2, last + 1, 2)), saved_steps
        assert KILL_AFTER - 2 <= last < REFERENCE_STEPS, (saved_steps, error)
        expected = {".lock", "checkpoint", "config.json", "logs"}
        expected |= {f"ckpt-{s}.{ext}" for s in saved_steps for ext in ("index", "data-00000-of-00001")}
        assert set(os.listdir(run)) == expected
        assert _events_pids(run / "logs") == {chief.popen.pid}
        assert (run / ".lock").read_text().split() == ["pid", str(chief.popen.pid)]
        assert json.loads((run / "config.json").read_text())["values"]["runtime"]["strategy"] == "multiworker"
        chief_saves = _saved(chief.text())
        assert chief_saves and all(os.path.dirname(path) == str(run) for path, _ in chief_saves)
        # Worker 1 saved too (TensorFlow needs every worker to), into a folder of its own under its
        # TMPDIR, which its SIGKILL left behind; worker 0 made none.
        other_saves = _saved(other.text())
        (own,) = [p for p in scratch[1].iterdir() if p.name.startswith("mzsr_worker_")]
        assert other_saves and all(os.path.dirname(path) == str(own) for path, _ in other_saves)
        assert {"ckpt-2.index", "ckpt-4.index", "config.json", "logs"} <= set(os.listdir(own))
        assert _events_pids(own / "logs") == {other.popen.pid}
        assert not [p for p in scratch[0].iterdir() if p.name.startswith("mzsr_worker_")]

        # -- the survivor's message: one line, naming the checkpoint to resume; exit code 1.  Its
        # other stderr lines are TensorFlow's C++ log (``E0000 ...`` and their continuation lines:
        # the failed RPC, and possibly the coordination service's "tasks have crashed" later on).
        err_lines = [line for line in chief.text("err").splitlines() if line.strip()]
        assert sum(line.startswith("error: ") for line in err_lines) == 1, err_lines
        following = err_lines.index(error) + 1
        assert following == len(err_lines) or re.match(r"[EWIF]\d{4} ", err_lines[following]), err_lines
        assert "Traceback" not in chief.text("err")
        assert not [line for line in err_lines if re.match(r"(WARNING|ERROR|INFO|CRITICAL)[:\s]", line)]
        assert error.startswith("error: lost a worker of the multi-worker run during step ")
        failed = int(re.search(r"during step (\d+) ", error).group(1))
        assert last < failed <= last + 2  # the step in flight, after the last save (every 2 steps)
        assert f"the last checkpoint is {run / f'ckpt-{last}'}" in error
        assert "--strategy default" in error

        # -- resume in one process (the lost worker's machine is gone), while worker 0 exits
        resumed = _Process("resumed run", base + [
            "--checkpoint-dir", str(runs), "--iterations", str(REFERENCE_STEPS), "--strategy", "default"],
            _environment(), str(tmp_path))
        processes.append(resumed)
        assert chief.finish(EXIT_TIMEOUT) == 1
        assert time.monotonic() - killed_at < EXIT_TIMEOUT
        resumed.wait_for(rf"^\[\*\] resumed {re.escape(str(run / f'ckpt-{last}'))} at iteration {last}$",
                         STARTUP_TIMEOUT)
        assert resumed.finish(STARTUP_TIMEOUT) == 0, resumed.text("err")
        assert reference.finish(STARTUP_TIMEOUT) == 0, reference.text("err")
    finally:
        for process in processes:
            process.kill()

    # -- the weights: both workers bitwise equal, and equal to the single-process run's
    reference_run = reference_runs / "Model0"
    chief_4, other_4 = _tensors(run / "ckpt-4"), _tensors(own / "ckpt-4")
    _assert_same(other_4, chief_4, 0.0, "worker 1 vs worker 0 at step 4")
    reference_2, reference_4 = _tensors(reference_run / "ckpt-2"), _tensors(reference_run / "ckpt-4")
    _assert_same(chief_4, reference_4, RELATIVE_TOLERANCE, "two workers vs one process at step 4")
    moved = max(float(np.max(np.abs(reference_4[k] - reference_2[k]))) for k in _weights(reference_4))
    assert moved > 100 * RELATIVE_TOLERANCE * max(float(np.max(np.abs(v)))
                                                  for v in _weights(reference_4).values())
    assert int(chief_4["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 4
    # The resumed run continued the same task stream: it ends where the single process did.
    _assert_same(_tensors(run / f"ckpt-{REFERENCE_STEPS}"), _tensors(reference_run / f"ckpt-{REFERENCE_STEPS}"),
                 RELATIVE_TOLERANCE, "resumed in one process vs one process at the end")
    assert json.loads((run / "config.json").read_text())["values"]["runtime"]["strategy"] == "default"


# --------------------------------------------------------------------------- in-process pieces

def _counter_state(directory, chief, step, weight):
    return training.RunState(str(directory), RunConfig(train=PretrainConfig()), step, 5, chief=chief,
                             workers=2, weights=tf.train.Checkpoint(w=weight))


def test_non_chief_resumes_from_the_run_folder_and_saves_elsewhere(tmp_path):
    run = tmp_path / "Model0"
    step, weight = tf.Variable(0, dtype=tf.int64), tf.Variable(0.0)
    chief = _counter_state(run, True, step, weight)
    step.assign(3)
    weight.assign(1.5)
    chief.save()
    chief.write_config()
    chief.close()
    before = sorted(os.listdir(run))

    step2, weight2 = tf.Variable(0, dtype=tf.int64), tf.Variable(0.0)
    other = _counter_state(run, False, step2, weight2)
    assert other.directory != str(run) and os.path.isdir(other.directory)
    assert other.resume(None) == str(run / "ckpt-3")  # the chief's checkpoint
    assert (int(step2.numpy()), float(weight2.numpy())) == (3, 1.5)
    step2.assign(4)
    saved = other.save()
    other.write_config()
    assert os.path.dirname(saved) == other.directory
    assert other.run_checkpoint(saved) == str(run / "ckpt-4")  # named after the chief's copy
    assert sorted(os.listdir(run)) == before  # nothing of the non-chief in the run folder
    other.close()
    assert not os.path.exists(other.directory)


def test_strategy_may_change_on_resume_but_precision_may_not():
    saved = RunConfig(runtime=RuntimeConfig(strategy="multiworker"))
    assert RunConfig(runtime=RuntimeConfig(strategy="default")).resume_differences(saved) == {}
    assert RunConfig(model=ModelConfig(width=8)).resume_differences(saved) == {"model.width": (64, 8)}
    assert RunConfig(runtime=RuntimeConfig(precision="mixed_bfloat16", strategy="default")
                     ).resume_differences(saved) == {"runtime.precision": ("float32", "mixed_bfloat16")}


def test_multiworker_needs_tf_config_and_a_lost_worker_exits_1(monkeypatch):
    from mzsr_tf import cli
    from mzsr_tf.config import ConfigError
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"--strategy multiworker needs TF_CONFIG"):
        training.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}))
    with pytest.raises(ConfigError, match=r"TF_CONFIG must name the cluster and this worker's task"):
        training.make_strategy("multiworker")
    monkeypatch.setenv(training.WORKER_TIMEOUT_ENV, "soon")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match=r"MZSR_WORKER_TIMEOUT='soon': expected a positive number"):
        training.make_strategy("multiworker")
    assert cli.exit_code_of(training.WorkerLostError("lost")) == cli.EXIT_FAILURE


def test_lost_worker_message_is_one_line_naming_the_checkpoint(tmp_path):
    message = ("Graph execution error:\n\nDetected at node adam/CollectiveReduceV2 defined at (most recent "
               "call last):\n  File \"scripts/main.py\", line 19, in <module>\n\nCollective ops is aborted "
               "by: Error reported from /job:worker/task:1: The following tasks are unhealthy (stopped "
               "sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.\n"
               "\t [[{{node adam/CollectiveReduceV2}}]] [Op:__inference__distributed_step_4067]")
    error = tf.errors.UnavailableError(None, None, message)
    lost = training.worker_lost(error, None, directory=str(tmp_path))
    assert str(lost) == (
        "lost a worker of the multi-worker run at start-up (UnavailableError: Error reported from "
        "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats): "
        f"/job:worker/replica:0/task:1); training stopped without saving and no checkpoint had been saved "
        f"in {tmp_path}. Resume it by starting every worker again with the same command, or on fewer "
        "machines with --strategy default or mirrored (TF_CONFIG unset)")
    step, weight = tf.Variable(6, dtype=tf.int64), tf.Variable(0.0)
    state = _counter_state(tmp_path / "Model0", True, step, weight)
    state.save()
    timeout = tf.errors.DeadlineExceededError(None, None, "Collective has timed out waiting for other workers.")
    assert str(training.worker_lost(timeout, state, 7)).startswith(
        "lost a worker of the multi-worker run during step 7 (DeadlineExceededError: Collective has timed "
        f"out waiting for other workers.); training stopped without saving and the last checkpoint is "
        f"{tmp_path / 'Model0' / 'ckpt-6'}. ")
    state.close()
