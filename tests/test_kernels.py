"""Tests for mzsr_tf.kernels: Gaussian conventions, random task kernels, .mat files and their errors."""
import math

import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from mzsr_tf import kernels
from mzsr_tf.kernels import KernelError


def _hand_gaussian(ksize, sigma):
    """exp(-0.5 p^T Sigma^-1 p) on the reference's grid (centre ksize/2 - 0.5), normalised."""
    inv = np.linalg.inv(sigma)
    centre = ksize / 2.0 - 0.5
    out = np.zeros((ksize, ksize))
    for row in range(ksize):
        for col in range(ksize):
            p = np.array([col - centre, row - centre])
            out[row, col] = math.exp(-0.5 * p @ inv @ p)
    return out / out.sum()


@pytest.mark.parametrize("ksize", [15, 4, 1])
def test_isotropic_variance_convention(ksize):
    # g2.0 means a variance of 2.0 along both axes.
    expected = _hand_gaussian(ksize, np.diag([2.0, 2.0]))
    np.testing.assert_allclose(kernels.isotropic_gaussian(ksize, 2.0), expected, rtol=0, atol=1e-15)


def test_isotropic_values_by_hand():
    k = kernels.isotropic_gaussian(3, 1.0)
    e = math.exp(-0.5)
    row = np.array([e, 1.0, e])
    np.testing.assert_allclose(k, np.outer(row, row) / np.outer(row, row).sum(), atol=1e-15)


@pytest.mark.parametrize("ksize,theta,l1,l2", [(15, 0.3, 6.0, 1.5), (8, 2.0, 3.0, 1.0), (15, 0.0, 4.0, 1.0)])
def test_anisotropic_matches_rotated_covariance(ksize, theta, l1, l2):
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    sigma = rotation @ np.diag([l1, l2]) @ rotation.T
    np.testing.assert_allclose(kernels.anisotropic_gaussian(ksize, theta, l1, l2),
                               _hand_gaussian(ksize, sigma), rtol=0, atol=1e-14)


def test_anisotropic_theta_zero_is_wider_along_columns():
    k = kernels.anisotropic_gaussian(15, 0.0, 6.0, 1.0)
    # l1 is the variance along x (columns): the centre row spreads more than the centre column.
    assert k[7, 10] > k[10, 7]


def test_generate_kernel_uses_rng_in_order():
    rng = np.random.default_rng(3)
    u_theta, u1, u2 = np.random.default_rng(3).random(3)
    theta, l1 = math.pi * u_theta, 1 + (5.0 - 1) * u1
    l2 = 1 + (l1 - 1) * u2
    np.testing.assert_allclose(kernels.generate_kernel(5.0, 15, rng),
                               kernels.anisotropic_gaussian(15, theta, l1, l2), atol=1e-15)


def test_min_eigenvalue_bounds_both_eigenvalues_by_hand():
    """l1 = m + (k1 - m) u1, l2 = m + (l1 - m) u2: with k1 = 5, m = 0.2 and u = (0.25, 0.5, 0.5),
    theta = pi / 4, l1 = 0.2 + 4.8 / 2 = 2.6, l2 = 0.2 + 2.4 / 2 = 1.4; u1 = u2 = 0 gives the bound itself."""
    theta, l1, l2 = kernels.random_kernel_parameters(5.0, 0.25, 0.5, 0.5, min_eigenvalue=0.2)
    assert (theta, l1, l2) == pytest.approx((math.pi / 4, 2.6, 1.4), abs=1e-12)
    assert kernels.random_kernel_parameters(5.0, 0.0, 0.0, 0.0, min_eigenvalue=0.2)[1:] == pytest.approx((0.2, 0.2))
    # the default is the reference's bound 1
    assert kernels.random_kernel_parameters(5.0, 0.25, 0.5, 0.5)[1:] == pytest.approx((3.0, 2.0), abs=1e-12)


def test_generate_kernel_with_min_eigenvalue_uses_rng_in_order():
    rng = np.random.default_rng(5)
    u_theta, u1, u2 = np.random.default_rng(5).random(3)
    l1 = 0.2 + (5.0 - 0.2) * u1
    l2 = 0.2 + (l1 - 0.2) * u2
    np.testing.assert_allclose(kernels.generate_kernel(5.0, 15, rng, min_eigenvalue=0.2),
                               kernels.anisotropic_gaussian(15, math.pi * u_theta, l1, l2), atol=1e-15)


@pytest.mark.parametrize("k1, min_eigenvalue, message", [(5.0, 0.0, "min_eigenvalue must be > 0"),
                                                          (0.5, 1.0, "k1 must be >= min_eigenvalue")])
def test_generate_kernel_rejects_bad_eigenvalue_range(k1, min_eigenvalue, message):
    with pytest.raises(KernelError, match=message):
        kernels.generate_kernel(k1, 15, np.random.default_rng(0), min_eigenvalue=min_eigenvalue)


def test_tf_random_kernel_with_min_eigenvalue_matches_numpy_formula():
    seed = tf.constant([9, 1], tf.int32)
    u = tf.random.stateless_uniform([3], seed=seed, dtype=tf.float64).numpy()
    l1 = 0.3 + (5.0 - 0.3) * u[1]
    expected = kernels.anisotropic_gaussian(15, math.pi * u[0], l1, 0.3 + (l1 - 0.3) * u[2])
    np.testing.assert_allclose(kernels.tf_random_kernel(seed, 5.0, 15, min_eigenvalue=0.3).numpy(), expected,
                               atol=1e-7)
    with pytest.raises(KernelError, match="min_eigenvalue must be > 0"):
        kernels.tf_random_kernel(seed, 5.0, 15, min_eigenvalue=-1.0)


def test_generate_kernel_needs_rng():
    with pytest.raises(KernelError, match="needs rng"):
        kernels.generate_kernel(5.0, 15)


def test_tf_random_kernel_matches_numpy_formula():
    seed = tf.constant([4, 7], tf.int32)
    u = tf.random.stateless_uniform([3], seed=seed, dtype=tf.float64).numpy()
    theta, l1, l2 = kernels.random_kernel_parameters(5.0, *u)
    k = kernels.tf_random_kernel(seed, 5.0, 15)
    assert k.dtype == tf.float32 and k.shape == (15, 15)
    np.testing.assert_allclose(k.numpy(), kernels.anisotropic_gaussian(15, theta, l1, l2), atol=1e-7)
    other = kernels.tf_random_kernel(tf.constant([4, 8]), 5.0, 15)
    assert not np.allclose(k.numpy(), other.numpy())


def test_tf_random_kernel_in_dataset_map():
    seeds = tf.data.Dataset.from_tensor_slices(tf.constant([[1, 2], [3, 4]], tf.int64))
    ds = seeds.map(lambda s: kernels.tf_random_kernel(s, tf.constant(5.0), 15))
    ks = [k.numpy() for k in ds]
    assert len(ks) == 2 and all(abs(k.sum() - 1) < 1e-5 for k in ks)


def test_save_load_round_trip(tmp_path):
    k = kernels.anisotropic_gaussian(15, 1.0, 5.0, 2.0)
    path = tmp_path / "k.mat"
    kernels.save_kernel(path, k)
    np.testing.assert_array_equal(kernels.load_kernel(path), k)
    assert scipy.io.loadmat(path)["kernel"].shape == (15, 15)


def test_load_reference_kernel(reference_dir):
    k = kernels.load_kernel(reference_dir / "Input" / "g20" / "kernel.mat")
    assert k.shape == (21, 21) and k.dtype == np.float64
    np.testing.assert_allclose(k.sum(), 1.0, atol=1e-12)


def test_reference_g20_kernel_is_isotropic_variance_2(reference_dir):
    # The published "g2.0" kernel is isotropic_gaussian(21, 2.0): variance 2.0, reference centre.
    k = kernels.load_kernel(reference_dir / "Input" / "g20" / "kernel.mat")
    np.testing.assert_allclose(k, kernels.isotropic_gaussian(21, 2.0), rtol=0, atol=1e-15)


def _write_mat_v73(path, variables):
    """A MATLAB v7.3 file: HDF5 with the 512-byte MATLAB header; arrays stored column-major (transposed)."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            handle[name] = np.asarray(value).T
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ")
    with open(path, "r+b") as raw:
        raw.write(header + b"\x00" * 8 + b"\x00\x02" + b"IM")


def test_load_matlab_v73(tmp_path):
    k = kernels.anisotropic_gaussian(5, 0.5, 3.0, 1.0)[:, :4]
    path = tmp_path / "v73.mat"
    _write_mat_v73(path, {"kernel": k, "other": np.ones(2)})
    np.testing.assert_array_equal(kernels.load_kernel(path), k)
    _write_mat_v73(path, {"blur": k})
    with pytest.raises(KernelError, match=r"v73\.mat: no variable 'kernel'.*variables present: blur"):
        kernels.load_kernel(path)


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.mat"
    with pytest.raises(KernelError, match=r"nope\.mat: kernel file not found"):
        kernels.load_kernel(path)


def test_load_not_a_mat_file(tmp_path):
    path = tmp_path / "bad.mat"
    path.write_text("this is not MATLAB")
    with pytest.raises(KernelError, match=r"bad\.mat: cannot read as a MATLAB \.mat file"):
        kernels.load_kernel(path)


def test_load_missing_key_lists_keys(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"blur": np.ones((3, 3)), "k2": np.ones((2, 2))})
    with pytest.raises(KernelError, match=r"other\.mat: no variable 'kernel'.*variables present: blur, k2"):
        kernels.load_kernel(path)


@pytest.mark.parametrize("array,message", [
    (np.ones((3, 3, 2)), r"must be a non-empty 2-D array, got shape \(3, 3, 2\)"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "has non-finite"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), "has non-finite"),
    (np.array([[1.0, -1.0], [0.0, 0.0]]), "must have a positive sum, got sum 0"),
    (-np.ones((3, 3)), "must have a positive sum, got sum -9"),
])
def test_load_bad_arrays(tmp_path, array, message):
    path = tmp_path / "k.mat"
    scipy.io.savemat(path, {"kernel": array})
    with pytest.raises(KernelError, match=r"k\.mat: kernel " + message):
        kernels.load_kernel(path)


def test_save_rejects_bad_kernel(tmp_path):
    with pytest.raises(KernelError, match="out.mat: kernel has non-finite"):
        kernels.save_kernel(tmp_path / "out.mat", np.full((3, 3), np.nan))


def test_kernel_error_is_value_error():
    assert issubclass(KernelError, ValueError)


@pytest.mark.parametrize("ksize", [0, -3, 2.5])
def test_bad_ksize(ksize):
    with pytest.raises(KernelError, match="kernel size must be a positive integer"):
        kernels.isotropic_gaussian(ksize, 2.0)


def test_bad_eigenvalue():
    with pytest.raises(KernelError, match="eigenvalue l2 must be positive"):
        kernels.anisotropic_gaussian(15, 0.0, 2.0, 0.0)


def test_matches_reference_gkernel_golden(golden_dir):
    with np.load(golden_dir / "kernels_reference.npz") as golden:
        for i, (ksize, theta, l1, l2) in enumerate(golden["params"]):
            ours = kernels.anisotropic_gaussian(int(ksize), theta, l1, l2)
            np.testing.assert_allclose(ours, golden[f"kernel_{i}"], rtol=0, atol=1e-12)
