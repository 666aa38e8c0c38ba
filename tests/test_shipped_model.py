"""The models this project ships. checkpoints/direct_x2: it loads from its preset path, it is the meta-trained
one, one adaptation step improves it on every demo image, and it meets issue 8's Set5 targets. The interim
bicubic_x2, direct_x4 and multi_scale models: --model 2, 3 and 1 fall back to them, and their Set5 numbers do not
regress."""
import pathlib

import pytest

from mzsr_tf import kernels, metrics
from mzsr_tf.checkpoints import load_weights
from mzsr_tf.config import get_preset
from mzsr_tf.imresize import imresize
from mzsr_tf.meta_test import MetaTester, paired_paths, read_pair
from mzsr_tf.model import MZSRNet

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO = REPO / "dataset" / "demo"


@pytest.fixture(scope="module")
def demo_psnrs():
    """Per demo image: PSNR (Y, dB) of bicubic, of the shipped model before adaptation and after one step
    of the ``--model 0`` schedule (learning rate 2e-2)."""
    preset = get_preset("direct_x2")
    model = MZSRNet()
    loaded = load_weights(model, str(REPO / preset.project_checkpoint))
    assert loaded.endswith("direct_x2/direct_x2")
    tester = MetaTester(model.trainable_variables, preset.adaptation_config(num_steps=1))
    kernel = kernels.load_kernel(DEMO / "kernel.mat")
    rows = {}
    for lr_path, gt_path in paired_paths(str(DEMO / "Input"), str(DEMO / "GT")):
        lr, gt = read_pair(lr_path, gt_path, 2)
        result = tester.adapt(lr, kernel, output_shape=gt.shape[:2])
        bicubic = imresize(lr, scale=2.0, output_shape=gt.shape[:2], kernel="cubic").clip(0, 1)
        rows[pathlib.Path(lr_path).stem] = {name: metrics.psnr_y(image, gt, 2) for name, image in
                                            [("bicubic", bicubic), ("initial", result.initial_sr),
                                             ("one_step", result.sr)]}
    assert len(rows) == 3
    return rows


def test_one_adaptation_step_improves_psnr_on_every_demo_image(demo_psnrs):
    """The meta-learned initialisation is made to be adapted: one step must help, and clearly (the same step
    moves the bicubic-pretrained weights by 0.006 dB on Set5 g2.0, and the first-order model shipped before
    this one lost 0.4 dB)."""
    for name, psnr in demo_psnrs.items():
        assert psnr["one_step"] > psnr["initial"] + 0.5, (name, psnr)


def test_shipped_model_beats_bicubic_by_far_on_the_demo_images(demo_psnrs):
    """The bicubic-pretrained starting point is only ~0.4 dB above bicubic interpolation on these g2.0 inputs;
    a meta-trained model has learned the blur and must be several dB above it after one step."""
    for name, psnr in demo_psnrs.items():
        assert psnr["one_step"] > psnr["bicubic"] + 3.0, (name, psnr)


def _shipped_set5_scores(preset_name, input_dir, gt_dir, kernel_path, scale=None):
    """Mean PSNR after 1 and 10 steps of the preset's shipped model on the five Set5 images of ``input_dir``, at
    the preset's scale or ``scale``."""
    from mzsr_tf.curves import load_folder, score_checkpoint
    preset = get_preset(preset_name)
    scale = scale or preset.scale
    folder = load_folder((str(input_dir), str(gt_dir), str(kernel_path)), scale)
    assert len(folder[0]) == 5
    return score_checkpoint(str(REPO / preset.project_checkpoint), {"set5": folder},
                            preset.adaptation_config(scale=scale), steps=(1, 10))["set5"]


def test_shipped_model_meets_the_set5_targets(reference_dir):
    """Issue 8's acceptance on the authors' Set5 g2.0^d inputs with the ``--model 0`` schedule: MZSR (1) at least
    35.0 dB and MZSR (10) at least 35.5 dB (the published model: 35.20 / 36.05). The thresholds are the issue's,
    not this model's numbers (35.02 / 35.72 when shipped)."""
    g20 = reference_dir / "Input" / "g20"
    scores = _shipped_set5_scores("direct_x2", g20 / "Set5", reference_dir / "GT" / "Set5", g20 / "kernel.mat")
    assert scores["mzsr_1"] >= 35.0, scores
    assert scores["mzsr_10"] >= 35.5, scores


# --------------------------------------------------------------------------- the interim models' fallback

@pytest.mark.parametrize("preset_name, reference_name, project_checkpoint", [
    ("bicubic_x2", "Bicubicx2", "checkpoints/bicubic_x2/bicubic_x2"),
    ("direct_x4", "Directx4", "checkpoints/direct_x4/direct_x4"),
    ("multiscale", "Multi-scale", "checkpoints/multi_scale/multi_scale"),
])
def test_models_1_2_and_3_fall_back_to_the_projects_own_model_and_say_so(caplog, tmp_path, preset_name,
                                                                        reference_name, project_checkpoint):
    import logging
    from mzsr_tf.checkpoints import CheckpointError
    from mzsr_tf.checkpoints import checkpoint_for_preset
    preset = get_preset(preset_name)
    with caplog.at_level(logging.INFO, logger="mzsr_tf"):
        path = checkpoint_for_preset(None, preset, str(REPO))
    assert path == str(REPO / project_checkpoint)
    assert (f"no published {reference_name} checkpoint at checkpoints/Model/{reference_name}; using the project's "
            "own model") in caplog.text
    with pytest.raises(CheckpointError, match=f"looked for checkpoints/Model/{reference_name} and {project_checkpoint}"):
        checkpoint_for_preset(None, preset, str(tmp_path))


# --------------------------------------------------------------------------- direct_x4 (--model 3)

@pytest.fixture(scope="module")
def set5_g20x4(shared_dir, tmp_path_factory):
    """Set5 under g^d_2.0 x4, made once from the HR images as make_testsets.py does: (LR folder, GT folder, kernel)."""
    from mzsr_tf import testsets

    out = tmp_path_factory.mktemp("set5_g20x4")
    testsets.make_testset(str(shared_dir / "datasets" / "benchmark" / "Set5"), str(out), ["g20x4"],
                          log=lambda line: None)
    return out / "Input" / "g20x4" / "Set5", out / "GT_x4" / "Set5", out / "Input" / "g20x4" / "kernel.mat"


def test_shipped_x4_model_on_set5_g20x4(set5_g20x4):
    """Set5 under g^d_2.0 x4 (made here from the HR images, as make_testsets.py does) with the --model 3 schedule.
    The issue's targets: MZSR (1) >= 29.7 and MZSR (10) >= 30.0 (the published model: 30.20 / 30.50; the model
    shipped gives 30.13 / 30.19 with the default son grid, 30.07 / 30.06 with the reference's)."""
    scores = _shipped_set5_scores("direct_x4", *set5_g20x4)
    assert scores["mzsr_1"] >= 29.7, scores
    assert scores["mzsr_10"] >= 30.0, scores


# --------------------------------------------------------------------------- bicubic_x2 (--model 2)

def test_shipped_bicubic_x2_model_on_set5(shared_dir, tmp_path):
    """Set5 in the clean bicubic scenario (made here from the HR images, as make_testsets.py does) with the --model 2
    schedule. The issue's targets: bic (1) >= 36.77 and (10) >= 37.25 (the published model: 36.77 / 37.25); the
    interim model shipped now (phase 6c's 300: bic 36.02 / 36.83, g^b_1.3 35.55 / 35.61) misses them (table in
    checkpoints/bicubic_x2/README.md; issue 15 stays open); this test holds it to what it does, 0.1 dB below its
    numbers when shipped, so that a regression shows. (g^b_1.3 is left to the card: one scenario is enough to
    catch a regression of the weights or the meta-test, and each costs a minute of CI.)"""
    from mzsr_tf import testsets

    testsets.make_testset(str(shared_dir / "datasets" / "benchmark" / "Set5"), str(tmp_path), ["bic"],
                          log=lambda line: None)
    bic = _shipped_set5_scores("bicubic_x2", tmp_path / "Input" / "bic" / "Set5", tmp_path / "GT" / "Set5", "")
    assert bic["mzsr_1"] >= 35.92 and bic["mzsr_10"] >= 36.73, bic


# --------------------------------------------------------------------------- multi_scale (--model 1)

def test_shipped_multi_scale_model_on_set5_at_x4(set5_g20x4):
    """Set5 g^d_2.0 at x4 (made here from the HR images, as make_testsets.py does) with the --model 1 schedule and
    the default son grid. The issue's target after 10 steps is x4 >= 29.5 (and x2 >= 35.0; the published model:
    35.67 at x2). The model shipped (phase 3a's 600) gives x4 29.82 / 29.93 and x2 34.90 / 35.25 after 1 / 10 steps;
    this test holds the 10-step number to the issue's target and the 1-step one to 0.1 dB below the model's, so that
    a regression shows. (x2 is left to the card: the x4 run exercises the same weights, and x2's meta-test is held
    by the direct_x2 and reference tests; each costs a minute or two of CI.)"""
    x4 = _shipped_set5_scores("multiscale", *set5_g20x4, scale=4.0)
    assert x4["mzsr_1"] >= 29.72 and x4["mzsr_10"] >= 29.5, x4
