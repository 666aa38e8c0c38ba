"""The committed training state of checkpoints/direct_x2 (written before RunConfig existed, as
config.json + run.json) resumes through the command line with its own configuration."""
import json
import os
import shutil

import pytest

from mzsr_tf import cli

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.path.join(REPO_ROOT, "checkpoints", "direct_x2", "train_state", "Model1")
TRAIN_IMAGES = os.path.join(REPO_ROOT, "..", "shared", "datasets", "train")
RECIPE = os.path.join(REPO_ROOT, "checkpoints", "direct_x2", "recipes", "phase5.json")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(TRAIN_IMAGES), reason="needs ../shared/datasets/train (the training images)")
def test_direct_x2_train_state_resumes(tmp_path, capsys, monkeypatch):
    # The state holds weights, Adam's slots and the step (no data position: the task stream follows
    # from the seed and the step); records are made under tmp_path (from T91 only, to be quick).
    monkeypatch.chdir(tmp_path)
    records = os.path.join("dataset", "records", "train_SR_MZSR")
    folders = [os.path.join(TRAIN_IMAGES, "T91")]  # any records will do: the state holds no data position
    assert cli.generate_tfrecord_script(["--labelpath", *folders, "--tfrecord", records, "--quiet"]) == 0
    shutil.copytree(STATE, tmp_path / "runs" / "Model1")
    common = ["--train", "--trial", "1", "--checkpoint-dir", str(tmp_path / "runs"),
              "--tfrecord", records + ".tfrecord", "--save-every", "1000"]
    # another recipe for the same folder is refused before anything is written
    assert cli.main_script(common + ["--iterations", "801", "--config",
                                     os.path.join(REPO_ROOT, "checkpoints", "direct_x2", "recipes",
                                                  "phase1.json")]) == 2
    assert "holds a run with another configuration" in capsys.readouterr().err
    # its own recipe, or no --config at all (the saved configuration is read back whole)
    assert cli.main_script(common + ["--iterations", "801", "--model", "0", "--config", RECIPE]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "ckpt-800 at iteration 800" in out and "done: step 801" in out, out
    assert cli.main_script(common + ["--iterations", "802"]) == 0
    assert "done: step 802" in capsys.readouterr().out
    saved = json.loads((tmp_path / "runs" / "Model1" / "config.json").read_text())
    assert saved["class"] == "RunConfig" and saved["values"]["train"]["initial_loss_weight"] == 0.01
    assert saved["values"]["train"]["patch_size"] == 32 and saved["values"]["preset"] == "direct_x2"
