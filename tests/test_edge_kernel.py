"""The edge-based kernel estimator (mzsr_tf.edge_kernel) against hand computations: the re-blur ratio formula on
blurred step edges, the direction and anisotropy of a known kernel, the covariance <-> kernel round trip, the
calibrated estimator against the fixed g^d_2.0 guess on held-out training images, and its errors."""
import numpy as np
import pytest
from scipy import ndimage

from mzsr_tf import blind, cli, degradation, kernels
from mzsr_tf.edge_kernel import (EdgeKernelConfig, EdgeKernelError, EdgeKernelEstimator, calibration_pairs,
                                 edge_variances, kernel_covariance, kernel_from_covariance, lr_covariance)
from mzsr_tf.kernel_estimation import kernel_error


def _polygons(size, sides=12, supersample=8):
    """Three nested regular polygons (turned against each other): straight step edges of 36 orientations,
    rendered by averaging 8x8 sub-pixels (so each pixel integrates its box: variance 1/12 per axis)."""
    n = size * supersample
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / supersample - size / 2
    radius, angle = np.hypot(x, y), np.arctan2(y, x)
    inside = np.zeros_like(radius, bool)
    for k, scale in enumerate((0.42, 0.3, 0.18)):
        boundary = np.cos(np.pi / sides) / np.cos((angle + k * 0.13) % (2 * np.pi / sides) - np.pi / sides)
        inside ^= radius < boundary * scale * size
    return 0.2 + 0.6 * inside.reshape(size, supersample, size, supersample).mean((1, 3))


@pytest.mark.parametrize("variance", [1.0, 2.0, 4.0])
def test_a_blurred_step_edge_gives_its_blur_variance(variance):
    """R = sqrt(v + d2 + r2) / sqrt(v + d2) inverted: the median over the edges is the blur's variance plus the
    pixel box's 1/12 (dropping the - d2 term of the formula would add 0.16)."""
    image = ndimage.gaussian_filter(_polygons(256), np.sqrt(variance), mode="reflect")
    estimates, _, _ = edge_variances(image, EdgeKernelConfig())
    assert abs(np.median(estimates) - (variance + 1 / 12)) < 0.1


def test_direction_and_anisotropy_of_a_known_kernel_after_direct_subsampling():
    """Kernel covariance R(0.6) diag(4, 1) R(0.6)^T: 4 x the LR covariance has its major axis within 3 degrees of
    0.6 rad (34.4 degrees) and an eigenvalue difference (which no isotropic offset changes) within 15% of 3."""
    kernel = kernels.anisotropic_gaussian(21, 0.6, 4.0, 1.0)
    lr = degradation.degrade(np.repeat(_polygons(256)[..., None], 3, 2), kernel, 2, "direct")
    values, vectors = np.linalg.eigh(4 * lr_covariance(lr[..., 0], EdgeKernelConfig()))
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1])) % 180
    assert abs(angle - np.degrees(0.6)) < 3
    assert abs((values[1] - values[0]) - 3.0) < 0.45


def test_kernel_from_covariance_round_trip():
    theta = 0.4
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    covariance = rotation @ np.diag([3.0, 1.0]) @ rotation.T
    kernel = kernel_from_covariance(covariance, EdgeKernelConfig())
    assert kernel.shape == (21, 21) and abs(kernel.sum() - 1) < 1e-12
    np.testing.assert_allclose(kernel_covariance(kernel), covariance, atol=1e-6)
    # eigenvalues are clipped to [min_variance, max_variance] = [0.2, 10]: major axis along x
    np.testing.assert_allclose(kernel_from_covariance(np.diag([50.0, 0.01]), EdgeKernelConfig()),
                               kernels.anisotropic_gaussian(21, 0.0, 10.0, 0.2), atol=1e-12)


def test_calibrated_estimator_beats_the_fixed_guess_on_held_out_training_images(shared_dir):
    """Images 81-100 of BSD200 (the calibration fit used the first 80) with rk-recipe kernels: the estimate is
    closer to the true kernel than the fixed g^d_2.0 guess on average, and, as the calibration intends (a kernel
    estimated too wide makes MZSR over-sharpen), its variance is at most the true one on most images."""
    pairs = calibration_pairs(str(shared_dir / "datasets" / "train" / "BSD200"), 100, start=80)
    estimator = EdgeKernelEstimator()
    g20 = kernels.isotropic_gaussian(21, 2.0)
    estimated = np.array([kernel_error(estimator.estimate(lr, 2), kernel) for lr, kernel in pairs])
    fixed = np.array([kernel_error(g20, kernel) for _, kernel in pairs])
    assert estimated.mean() < fixed.mean(), (estimated.mean(), fixed.mean())
    narrower = [np.trace(kernel_covariance(estimator.estimate(lr, 2))) <= np.trace(kernel_covariance(kernel))
                for lr, kernel in pairs]
    assert np.mean(narrower) >= 0.75


def test_errors_and_config_checks():
    estimator = EdgeKernelEstimator()
    with pytest.raises(EdgeKernelError, match="31x40 pixels is too small .* at least 32x32"):
        estimator.estimate(np.random.default_rng(0).random((31, 40, 3)), 2)
    with pytest.raises(EdgeKernelError, match="no edges"):
        estimator.estimate(np.full((64, 64, 3), 0.5), 2)
    for field, value in (("sigma_reblur", 0), ("edge_fraction", 1.5), ("orientation_bins", 2), ("gain", -1.0),
                         ("offset", float("nan")), ("min_variance", 20.0)):
        with pytest.raises(ValueError, match="EdgeKernelConfig"):
            EdgeKernelConfig(**{field: value})


def test_the_cli_lists_the_estimators_blind_knows():
    assert cli.ESTIMATOR_CHOICES == tuple(blind.ESTIMATORS)
    assert cli.ESTIMATOR_DEFAULT == "edges"
