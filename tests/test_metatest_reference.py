"""The meta-test reproduces the reference's numbers on Set5 / g2.0 (direct x2) from the Pretrained weights.

The reference (github JWSoh/MZSR, ``main.py`` + ``test.py``) was run under ``tf.compat.v1`` on this machine
with ``Pretrained/Pretrained`` as the checkpoint; ``tests/golden/reference_metatest.npz`` holds its per-image
PSNRs (full precision) and, for ``--model 0 --num 1``, its SR images (see tests/golden/README.md). Its printed
averages: ``--model 0 --num 1`` ``Initial: 29.1360, Final : 29.1421``; ``--model 0 --num 10`` ``Final :
29.1625``; ``--model 2 --num 10`` ``Final : 29.1401``.  The tests run the default meta-test (son grid 'exact'):
every Set5 x2 input's sides are even, where it is the reference's, bit for bit (tests/test_son_grid.py).
"""
import numpy as np
import pytest

from mzsr_tf import kernels, metrics
from mzsr_tf.checkpoints import load_weights
from mzsr_tf.config import preset_for_model
from mzsr_tf.meta_test import MetaTester, paired_paths, read_pair
from mzsr_tf.model import MZSRNet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def golden(golden_dir):
    return np.load(golden_dir / "reference_metatest.npz")


@pytest.fixture(scope="module")
def set5(reference_dir):
    inputs, gts = map(list, zip(*(read_pair(lr_path, gt_path, 2) for lr_path, gt_path in paired_paths(
        str(reference_dir / "Input" / "g20" / "Set5"), str(reference_dir / "GT" / "Set5")))))
    kernel = kernels.load_kernel(reference_dir / "Input" / "g20" / "kernel.mat")
    model = MZSRNet()
    load_weights(model, str(reference_dir / "Pretrained" / "Pretrained"))
    return inputs, gts, kernel, model


@pytest.fixture(scope="module")
def runs(set5):
    """``runs(model_index, precision)``: per Set5 image, the SR images after 0, 1 and 10 steps (0 and 1 in a mixed
    precision) of one adaptation (``adapt_at_steps``: ``srs[n]`` is what ``adapt`` with ``num_steps=n`` makes),
    computed once for the module."""
    inputs, gts, kernel, model = set5
    done = {}

    def run(model_index, precision="float32"):
        if (model_index, precision) not in done:
            config = preset_for_model(model_index).adaptation_config(precision=precision)
            tester = MetaTester(model.trainable_variables, config)
            steps = (0, 1, 10) if precision == "float32" else (0, 1)
            done[model_index, precision] = [tester.adapt_at_steps(lr, kernel, steps, output_shape=gt.shape[:2])
                                            for lr, gt in zip(inputs, gts)]
        return done[model_index, precision]
    return run


def _psnrs(set5, results, num_steps):
    """PSNR on Y of each image before adaptation and after ``num_steps`` steps."""
    gts = set5[1]
    initial = np.array([metrics.psnr_y(r.srs[0], gt, 2) for r, gt in zip(results, gts)])
    final = np.array([metrics.psnr_y(r.srs[num_steps], gt, 2) for r, gt in zip(results, gts)])
    return initial, final


@pytest.mark.parametrize("model_index, num_steps, initial, final", [
    (0, 1, 29.1360, 29.1421),
    (0, 10, 29.1360, 29.1625),
    (2, 10, 29.1360, 29.1401),
])
def test_reference_psnr_per_image_and_average(set5, runs, golden, model_index, num_steps, initial, final):
    initial_psnr, final_psnr = _psnrs(set5, runs(model_index), num_steps)
    key = f"model{model_index}_num{num_steps}"
    np.testing.assert_allclose(initial_psnr, golden[key + "__initial_psnr"], atol=1e-3)
    np.testing.assert_allclose(final_psnr, golden[key + "__final_psnr"], atol=1e-3)
    # the printed averages, to the reference's 4 decimals
    assert np.mean(initial_psnr) == pytest.approx(initial, abs=6e-4)
    assert np.mean(final_psnr) == pytest.approx(final, abs=6e-4)
    # the steps did something: a no-op loop would leave final == initial (the smallest gain here is
    # 0.004 dB on average, for --model 2; single images can move by as little as 4e-6 dB)
    assert np.mean(final_psnr) - np.mean(initial_psnr) > 0.002


@pytest.mark.parametrize("precision, max_off_by_two", [("float32", 0.0), ("mixed_bfloat16", 1e-3)])
def test_sr_images_match_the_reference_pngs(set5, runs, golden, precision, max_off_by_two):
    """Every pixel within one grey level of the reference's PNG in float32; >= 99.9% with bfloat16."""
    results = runs(0, precision)
    _, final_psnr = _psnrs(set5, results, 1)
    for name, result in zip(golden["names"], results):
        reference = golden[f"model0_num1__sr__{name}"].astype(int)
        difference = np.abs(metrics.to_uint8(result.srs[1]).astype(int) - reference)
        assert np.mean(difference > 1) <= max_off_by_two, name
    np.testing.assert_allclose(final_psnr, golden["model0_num1__final_psnr"], atol=0.01)
