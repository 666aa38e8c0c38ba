"""A copy of the repository with nothing beside it trains and runs: records from its own demo images,
meta-training from its own bicubic-pretrained weights (the default transfer), and the demo."""
import os
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAINED = os.path.join(REPO_ROOT, "checkpoints", "pretrained_x2", "pretrained_x2.index")


def _tracked_files():
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if line and os.path.exists(os.path.join(REPO_ROOT, line))]


def _run(argv, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # the copy's own package first: the installed (editable) one is the original checkout
    env["PYTHONPATH"] = cwd
    return subprocess.run([sys.executable] + argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.join(REPO_ROOT, ".git")), reason="needs a git checkout to copy")
@pytest.mark.skipif(not os.path.exists(PRETRAINED), reason="checkpoints/pretrained_x2 is not in this tree")
def test_a_copy_with_nothing_beside_it_trains_and_runs(tmp_path):
    copy = tmp_path / "alone" / "mzsr-tf"  # no ../shared beside it
    for name in _tracked_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO_ROOT, name), target)
    assert not (copy.parent / "shared").exists() and not (copy / "checkpoints" / "Pretrained").exists()
    copy = str(copy)

    made = _run(["scripts/generate_tfrecord.py", "--labelpath", "dataset/demo/GT", "--tfrecord",
                 "dataset/records/tiny", "--quiet"], copy)
    assert made.returncode == 0, made.stderr
    trained = _run(["scripts/main.py", "--train", "--iterations", "2", "--tfrecord", "dataset/records/tiny.tfrecord",
                    "--checkpoint-dir", "runs/alone", "--save-every", "2"], copy)
    assert trained.returncode == 0, trained.stderr
    transfer = os.path.join(copy, "checkpoints", "pretrained_x2", "pretrained_x2")
    assert f"transfer: starting from the pre-trained weights {transfer}" in trained.stdout, trained.stdout
    assert "done: step 2" in trained.stdout, trained.stdout
    demo = _run(["scripts/main.py"], copy)
    assert demo.returncode == 0, demo.stderr
    assert "[*] Average PSNR ** Initial:" in demo.stdout and os.path.exists(
        os.path.join(copy, "results", "demo", "01", "results.json"))
