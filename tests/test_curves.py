"""Tests of the learning-curve tool: checkpoints found by step, scores equal a direct meta-test, figure."""
import json
import pathlib
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import checkpoints, curves, degradation, kernels, metrics, plots
from mzsr_tf.config import preset_for_model
from mzsr_tf.meta_test import MetaTester
from mzsr_tf.model import MZSRNet


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    rng = np.random.default_rng(0)
    kernel = kernels.isotropic_gaussian(7, 1.5)
    for sub in ("LR", "GT", "run"):
        (root / sub).mkdir()
    y, x = np.mgrid[0:24, 0:28] / 28.0
    gt = np.stack([np.cos(2 * np.pi * (rng.uniform(1, 3) * y + rng.uniform(1, 3) * x)) for _ in range(3)], -1)
    gt = (gt + 1) / 2
    iio.imwrite(root / "GT" / "a.png", metrics.to_uint8(gt))
    iio.imwrite(root / "LR" / "a.png", metrics.to_uint8(degradation.degrade(gt, kernel, 2.0)))
    kernels.save_kernel(root / "k.mat", kernel)
    for step, seed in [(100, 1), (20, 2)]:
        model = MZSRNet(seed=seed)
        model(tf.zeros([1, 8, 8, 3]))
        checkpoints.export_weights(model, str(root / "run" / f"ckpt-{step}"))
    return root


def test_checkpoints_are_ordered_by_step(run):
    assert [step for step, _ in curves.run_checkpoints(str(run / "run"))] == [20, 100]


def test_scores_equal_a_direct_meta_test_and_rows_are_reused(run, tmp_path):
    folders = {"tiny": (str(run / "LR"), str(run / "GT"), str(run / "k.mat"))}
    config = preset_for_model(0).adaptation_config()
    out = tmp_path / "curve.json"
    rows = curves.learning_curve(str(run / "run"), folders, config, steps=(1, 3), out_json=str(out), log=lambda s: None)
    assert [row["step"] for row in rows] == [20, 100]

    model = MZSRNet()
    checkpoints.load_weights(model, str(run / "run" / "ckpt-100"))
    lr = iio.imread(run / "LR" / "a.png").astype(np.float32) / 255
    gt = iio.imread(run / "GT" / "a.png").astype(np.float32) / 255
    direct = MetaTester(model.trainable_variables, preset_for_model(0).adaptation_config(num_steps=3))
    sr = direct.adapt(lr, kernels.load_kernel(run / "k.mat"), output_shape=gt.shape[:2]).sr
    assert rows[1]["scores"]["tiny"]["mzsr_3"] == pytest.approx(metrics.psnr_y(sr, gt, 2), abs=1e-9)

    saved = json.loads(out.read_text())
    saved["rows"][0]["scores"]["tiny"]["mzsr_1"] = -1.0  # a finished row is reused, not recomputed
    out.write_text(json.dumps(saved))
    again = curves.learning_curve(str(run / "run"), folders, config, steps=(1, 3), out_json=str(out),
                                  log=lambda s: None)
    assert again[0]["scores"]["tiny"]["mzsr_1"] == -1.0

    # a checkpoint the run deleted since keeps its row
    saved = json.loads(out.read_text())
    saved["rows"].insert(0, {"step": 5, "checkpoint": str(run / "run" / "ckpt-5"), "scores": {"tiny": {"mzsr_1": 1.0}}})
    out.write_text(json.dumps(saved))
    kept = curves.learning_curve(str(run / "run"), folders, config, steps=(1, 3), out_json=str(out), log=lambda s: None)
    assert [row["step"] for row in kept] == [5, 20, 100]
    assert curves.best_row(rows, "tiny", "mzsr_3") in rows

    figure = plots.plot_learning_curve(rows, str(tmp_path / "curve.png"), reference={"tiny": {"paper": 20.0}})
    image = iio.imread(figure)
    assert image.ndim == 3 and image.std() > 1


def test_a_folder_without_checkpoints_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no ckpt-N checkpoints in"):
        curves.run_checkpoints(str(tmp_path))


def _rows(steps, value):
    return [{"step": s, "checkpoint": f"ckpt-{s}", "scores": {"tiny": {"mzsr_1": value + s}}} for s in steps]


def test_chain_cuts_each_phase_where_the_next_started_and_shifts_its_steps():
    first, second, third = _rows([50, 100, 150], 0.0), _rows([10, 20, 30], 1000.0), _rows([5, 10], 2000.0)
    joined = curves.chain([(first, 100), (second, 20), (third, None)])
    # hand-made: phase 0 up to 100; phase 1 continues from 100 up to its 20 (-> 120); phase 2 from 120
    assert [(row["step"], row["phase"], row["phase_step"]) for row in joined] == [
        (50, 0, 50), (100, 0, 100), (110, 1, 10), (120, 1, 20), (125, 2, 5), (130, 2, 10)]
    assert [row["scores"]["tiny"]["mzsr_1"] for row in joined] == [50, 100, 1010, 1020, 2005, 2010]
    assert plots.phase_starts(joined) == [100, 120]  # where phases 1 and 2 started, not their first rows
    with pytest.raises(ValueError, match="phase 0 needs the step"):
        curves.chain([(first, None), (second, None)])


def test_learning_curve_script_joins_earlier_phases(run, tmp_path):
    repo = pathlib.Path(__file__).resolve().parents[1]
    earlier = tmp_path / "phase0.json"
    earlier.write_text(json.dumps({"rows": [{"step": s, "checkpoint": f"c{s}", "scores": {"tiny": {"mzsr_10": 9.0}}}
                                            for s in (100, 300, 500)]}))
    folder = f"tiny={run / 'LR'},{run / 'GT'},{run / 'k.mat'}"
    out, joined, png = tmp_path / "this.json", tmp_path / "joined.json", tmp_path / "curve.png"
    done = subprocess.run([sys.executable, str(repo / "scripts" / "learning_curve.py"), "--run", str(run / "run"),
                           "--folder", folder, "--steps", "1", "--out", str(out), "--png", str(png),
                           "--before", f"{earlier}@300", "--chain-out", str(joined)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = json.loads(joined.read_text())["rows"]
    assert [(row["step"], row["phase"]) for row in rows] == [(100, 0), (300, 0), (320, 1), (400, 1)]
    assert [row["step"] for row in json.loads(out.read_text())["rows"]] == [20, 100]  # this run's own steps
    assert iio.imread(png).std() > 1
    bad = subprocess.run([sys.executable, str(repo / "scripts" / "learning_curve.py"), "--run", str(run / "run"),
                          "--folder", folder, "--out", str(out), "--before", f"{tmp_path / 'missing.json'}@3"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.json: not a learning-curve JSON" in bad.stderr


# --------------------------------------------------------------------------- rows reused only when they match

def _tamper(out):
    """Mark every saved score: a row that is reused instead of scored again shows -1."""
    saved = json.loads(out.read_text())
    for row in saved["rows"]:
        for scores in row["scores"].values():
            for key in scores:
                scores[key] = -1.0
    out.write_text(json.dumps(saved))


def _scores(rows):
    return [value for row in rows for scores in row["scores"].values() for value in scores.values()]


def test_rows_are_reused_only_for_the_same_folders_and_steps(run, tmp_path):
    import shutil

    folders = {"tiny": (str(run / "LR"), str(run / "GT"), str(run / "k.mat"))}
    config = preset_for_model(0).adaptation_config()
    out = tmp_path / "curve.json"
    first = curves.learning_curve(str(run / "run"), folders, config, steps=(1,), out_json=str(out), log=lambda s: None)
    _tamper(out)
    lines = []
    other_steps = curves.learning_curve(str(run / "run"), folders, config, steps=(1, 2), out_json=str(out),
                                        log=lines.append)
    assert all(value > 10 for value in _scores(other_steps))  # scored again, not the -1 of the file
    assert [row["scores"]["tiny"]["mzsr_1"] for row in other_steps] == [row["scores"]["tiny"]["mzsr_1"] for row in first]
    assert all("mzsr_2" in row["scores"]["tiny"] for row in other_steps)
    assert lines[0] == f"{out}: its 2 row(s) were scored with other steps; scoring again"

    # the same folder name over a copy of the images elsewhere: other paths, scored again
    copy = tmp_path / "copy"
    for sub in ("LR", "GT"):
        shutil.copytree(run / sub, copy / sub)
    _tamper(out)
    lines.clear()
    moved = {"tiny": (str(copy / "LR"), str(copy / "GT"), str(run / "k.mat"))}
    elsewhere = curves.learning_curve(str(run / "run"), moved, config, steps=(1, 2), out_json=str(out),
                                      log=lines.append)
    assert _scores(elsewhere) == _scores(other_steps)  # same images, scored again
    assert lines[0].endswith("scored with other folders; scoring again")

    # everything equal: the rows are reused (the marks come back)
    _tamper(out)
    again = curves.learning_curve(str(run / "run"), moved, config, steps=(2, 1), out_json=str(out), log=lambda s: None)
    assert _scores(again) == [-1.0] * 4
    assert json.loads(out.read_text())["key"]["folders"] == {"tiny": [str(copy / "LR"), str(copy / "GT"),
                                                                      str(run / "k.mat")]}


def test_a_curve_of_another_run_is_refused_not_mixed(run, tmp_path, capsys):
    import os
    import shutil

    from mzsr_tf import cli

    other = tmp_path / "other_run"
    other.mkdir()
    for file in (run / "run").glob("ckpt-20.*"):
        shutil.copy(file, other / file.name)
    folders = {"tiny": (str(run / "LR"), str(run / "GT"), str(run / "k.mat"))}
    config = preset_for_model(0).adaptation_config()
    out = tmp_path / "curve.json"
    curves.learning_curve(str(other), folders, config, steps=(1,), out_json=str(out), log=lambda s: None)
    before = out.read_text()
    message = (f"{out} holds the learning curve of run {os.path.realpath(other)}, not of "
               f"{os.path.realpath(run / 'run')}; give another --out (a curve JSON belongs to one run)")
    with pytest.raises(ValueError) as info:
        curves.learning_curve(str(run / "run"), folders, config, steps=(1,), out_json=str(out), log=lambda s: None)
    assert str(info.value) == message
    assert out.read_text() == before  # neither mixed nor overwritten
    folder = f"tiny={run / 'LR'},{run / 'GT'},{run / 'k.mat'}"
    code = cli.learning_curve_script(["--run", str(run / "run"), "--folder", folder, "--steps", "1",
                                      "--out", str(out)])
    assert code == 2 and capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("option", ["--out", "--png", "--chain-out"])
def test_output_paths_are_checked_before_any_checkpoint_is_scored(run, tmp_path, capsys, monkeypatch, option):
    from mzsr_tf import cli

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was scored before the output paths were checked")
    monkeypatch.setattr(curves, "score_checkpoint", refuse)
    (tmp_path / "taken").write_text("a file")
    bad = tmp_path / "taken" / "curve.x"
    paths = {"--out": str(tmp_path / "curve.json"), "--png": str(tmp_path / "curve.png"),
             "--chain-out": str(tmp_path / "joined.json")}
    paths[option] = str(bad)
    argv = ["--run", str(run / "run"), "--folder", f"tiny={run / 'LR'},{run / 'GT'},{run / 'k.mat'}"]
    for flag, path in paths.items():
        argv += [flag, path]
    code = cli.learning_curve_script(argv)
    assert code == 2
    assert capsys.readouterr().err == f"error: {option} {bad}: {tmp_path / 'taken'} is a file, not a folder\n"
    assert not (tmp_path / "curve.json").exists()
