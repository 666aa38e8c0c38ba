"""Tests of the learning-curve tool: checkpoints found by step, scores equal a direct meta-test, figure."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import checkpoints, curves, degradation, kernels, metrics, plots
from mzsr_tf.adaptation import MetaTester
from mzsr_tf.config import preset_for_model
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
