"""Tests for mzsr_tf.metrics: the reference's Y/PSNR protocol and SSIM, against hand computations."""
import math

import numpy as np
import pytest

from mzsr_tf import metrics


def test_rgb2y_uint8_by_hand():
    img = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)
    expected = [[round(65.481 + 16), round(128.553 + 16)],
                [round(24.966 + 16), round((65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255 + 16)]]
    y = metrics.rgb2y(img)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, expected)


def test_rgb2y_float_by_hand():
    img = np.array([[[1.0, 0.5, 0.25]]])
    y = metrics.rgb2y(img)
    assert y.dtype == np.float64 and y.shape == (1, 1)
    assert y[0, 0] == pytest.approx((65.481 + 128.553 * 0.5 + 24.966 * 0.25 + 16) / 255, abs=1e-15)


def test_rgb2y_gray_passthrough():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(metrics.rgb2y(gray), gray)
    np.testing.assert_array_equal(metrics.rgb2y(gray[:, :, None]), gray)


def test_rgb2y_rejects_two_channels():
    with pytest.raises(ValueError, match=r"rgb2y: expected an \[H, W, 3\].*got shape \(2, 2, 2\)"):
        metrics.rgb2y(np.zeros((2, 2, 2)))


def test_modcrop():
    img = np.zeros((13, 17, 3))
    assert metrics.modcrop(img, 2).shape == (12, 16, 3)
    assert metrics.modcrop(img, 4.0).shape == (12, 16, 3)
    assert metrics.modcrop(img[:, :, 0], 3).shape == (12, 15)
    assert metrics.modcrop(img, 2.5).shape == (12, 15, 3)  # 13 - 13 % 2.5 = 12.5 -> 12


def test_shave():
    img = np.arange(36).reshape(6, 6)
    np.testing.assert_array_equal(metrics.shave(img, 2), img[2:4, 2:4])
    np.testing.assert_array_equal(metrics.shave(img, 0), img)
    with pytest.raises(ValueError, match=r"shave: a border of 3 leaves nothing of an image of shape \(6, 6\)"):
        metrics.shave(img, 3)


def test_psnr_identical_is_100():
    img = np.random.default_rng(0).random((5, 5))
    assert metrics.psnr(img, img) == 100


def test_psnr_peak_rule_by_hand():
    a = np.zeros((2, 2))
    b = np.full((2, 2), 0.1)
    b[0, 0] = 0.3  # mse = (3*0.01 + 0.09)/4 = 0.03
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(1 / math.sqrt(0.03)), abs=1e-5)
    a255 = np.full((2, 2), 200.0)
    b255 = a255 + np.array([[2.0, 0], [0, 0]])  # mse = 1
    assert metrics.psnr(a255, b255) == pytest.approx(20 * math.log10(255.0), abs=1e-9)


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError, match=r"psnr: images must have the same shape, got \(2, 3\) and \(3, 2\)"):
        metrics.psnr(np.zeros((2, 3)), np.zeros((3, 2)))


def test_to_uint8():
    np.testing.assert_array_equal(metrics.to_uint8(np.array([-0.1, 0.0, 0.5, 1 / 255 * 2.5, 1.2])),
                                  [0, 0, 128, 2, 255])


def test_psnr_y_protocol_by_hand():
    rng = np.random.default_rng(1)
    gt = rng.random((10, 12, 3))
    sr = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    gt_y = metrics.rgb2y(np.round(np.clip(gt * 255, 0, 255)).astype(np.uint8))[2:-2, 2:-2].astype(np.float64)
    sr_y = metrics.rgb2y(np.round(np.clip(sr * 255, 0, 255)).astype(np.uint8))[2:-2, 2:-2].astype(np.float64)
    expected = 20 * math.log10(255 / math.sqrt(np.mean((gt_y - sr_y) ** 2)))
    assert metrics.psnr_y(sr, gt, 2) == pytest.approx(expected, abs=1e-4)
    # uint8 input gives the same number.
    assert metrics.psnr_y(metrics.to_uint8(sr), metrics.to_uint8(gt), 2) == metrics.psnr_y(sr, gt, 2)


def test_psnr_y_gray():
    gt = np.random.default_rng(2).integers(0, 256, (8, 8), dtype=np.uint8)
    sr = gt.copy()
    sr[4, 4] ^= 4
    expected = 20 * math.log10(255 / math.sqrt(16 / 16))
    assert metrics.psnr_y(sr, gt, 2) == pytest.approx(expected, abs=1e-5)


def test_psnr_y_shape_mismatch():
    with pytest.raises(ValueError, match=r"psnr_y: images must have the same shape, got \(4, 4, 3\) and \(4, 6, 3\)"):
        metrics.psnr_y(np.zeros((4, 4, 3)), np.zeros((4, 6, 3)), 0)


def test_ssim_identical_is_one():
    img = np.random.default_rng(3).integers(0, 256, (20, 20)).astype(np.float64)
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def _ssim_by_loops(a, b):
    """SSIM with an explicit loop over 11x11 windows (independent of the scipy filtering)."""
    window = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    window = np.outer(window, window)
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (window * pa).sum(), (window * pb).sum()
            va = (window * (pa - ma) ** 2).sum()
            vb = (window * (pb - mb) ** 2).sum()
            cov = (window * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_window_loop():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (16, 19)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    assert metrics.ssim(a, b) == pytest.approx(_ssim_by_loops(a, b), abs=1e-10)


def test_ssim_y_protocol():
    rng = np.random.default_rng(5)
    gt = rng.random((20, 22, 3))
    sr = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    gt_y = metrics.rgb2y(metrics.to_uint8(gt))[2:-2, 2:-2].astype(np.float64)
    sr_y = metrics.rgb2y(metrics.to_uint8(sr))[2:-2, 2:-2].astype(np.float64)
    assert metrics.ssim_y(sr, gt, 2) == pytest.approx(_ssim_by_loops(gt_y, sr_y), abs=1e-10)


def test_ssim_too_small():
    with pytest.raises(ValueError, match=r"ssim: images of shape \(8, 30\) are smaller than the 11x11 window"):
        metrics.ssim(np.zeros((8, 30)), np.zeros((8, 30)))


def test_ssim_y_shape_mismatch():
    with pytest.raises(ValueError, match=r"ssim_y: images must have the same shape, got \(20, 20, 3\) and \(20, 20\)"):
        metrics.ssim_y(np.zeros((20, 20, 3)), np.zeros((20, 20)), 0)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_matches_reference_protocol_golden(golden_dir, index):
    with np.load(golden_dir / "metrics_reference.npz") as golden:
        gt, sr, scale = golden[f"gt_{index}"], golden[f"sr_{index}"], int(golden[f"scale_{index}"])
        assert metrics.psnr_y(sr, gt, scale) == pytest.approx(float(golden[f"psnr_y_{index}"]), abs=1e-9)
        assert metrics.ssim_y(sr, gt, scale) == pytest.approx(float(golden[f"ssim_y_{index}"]), abs=1e-10)
        np.testing.assert_array_equal(metrics.rgb2y(metrics.to_uint8(gt)), golden[f"y_uint8_{index}"])
        np.testing.assert_allclose(metrics.rgb2y(gt), golden[f"y_float_{index}"], rtol=0, atol=1e-15)
        assert metrics.psnr(gt, sr) == pytest.approx(float(golden[f"psnr_float_{index}"]), abs=1e-9)
        assert metrics.modcrop(gt, float(scale)).shape == tuple(golden[f"modcrop_shape_{index}"])
