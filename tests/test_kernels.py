"""Tests for mzsr_tf.kernels: Gaussian conventions, random task kernels, .mat files and their errors."""
import math
import pathlib

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


def test_log_uniform_eigenvalues_by_hand():
    """l1 = m (k1 / m) ** u1, l2 = m (l1 / m) ** u2: with k1 = 5, m = 0.2 (k1 / m = 25) and u = (0.25, 0.5,
    0.5), l1 = 0.2 * 5 = 1 and l2 = 0.2 * sqrt(5); u1 = 1 reaches k1, u2 = 0 gives m; theta as for uniform."""
    theta, l1, l2 = kernels.random_kernel_parameters(5.0, 0.25, 0.5, 0.5, min_eigenvalue=0.2, log_uniform=True)
    assert (theta, l1, l2) == pytest.approx((math.pi / 4, 1.0, 0.2 * math.sqrt(5)), abs=1e-12)
    assert kernels.random_kernel_parameters(5.0, 0.0, 1.0, 0.0, min_eigenvalue=0.2,
                                            log_uniform=True)[1:] == pytest.approx((5.0, 0.2))


def test_tf_random_kernel_log_uniform_matches_numpy_formula():
    """The TF path draws the same uniforms and maps them by the log-uniform formula, written out here."""
    seed = tf.constant([9, 1], tf.int32)
    u = tf.random.stateless_uniform([3], seed=seed, dtype=tf.float64).numpy()
    l1 = 0.2 * 25.0 ** u[1]
    expected = kernels.anisotropic_gaussian(15, math.pi * u[0], l1, 0.2 * (l1 / 0.2) ** u[2])
    np.testing.assert_allclose(kernels.tf_random_kernel(seed, 5.0, 15, min_eigenvalue=0.2, log_uniform=True).numpy(),
                               expected, atol=1e-7)


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
    k = k / k.sum()  # a non-square kernel, still a kernel (summing to 1)
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


# --------------------------------------------------------------------------- KernelSource: the kernel of each image

def test_kernel_folder_gives_each_image_its_own_file(tmp_path):
    wide, narrow = kernels.isotropic_gaussian(9, 2.0), kernels.anisotropic_gaussian(7, 0.3, 1.5, 0.5)
    kernels.save_kernel(tmp_path / "baby.mat", wide)
    kernels.save_kernel(tmp_path / "bird.mat", narrow)
    source = kernels.KernelSource.from_folder(tmp_path)
    kernel, origin = source.kernel_for("/somewhere/Input/bird.png")
    np.testing.assert_array_equal(kernel, narrow)
    assert origin == str(tmp_path / "bird.mat")
    np.testing.assert_array_equal(source.kernel_for("Input/baby.bmp").kernel, wide)
    assert source.name == str(tmp_path)


def test_kernel_folder_without_the_image_kernel_is_a_one_line_error(tmp_path):
    kernels.save_kernel(tmp_path / "baby.mat", kernels.isotropic_gaussian(9, 2.0))
    source = kernels.KernelSource.from_folder(tmp_path)
    with pytest.raises(KernelError) as info:
        source.kernel_for("Input/head.png")
    message = str(info.value)
    assert message == f"no kernel for image Input/head.png in kernel folder {tmp_path} (expected head.mat)"
    with pytest.raises(KernelError, match=r"kernel folder .*nowhere does not exist"):
        kernels.KernelSource.from_folder(tmp_path / "nowhere")


def test_kernel_source_from_the_kernelpath_flag(tmp_path):
    kernel = kernels.isotropic_gaussian(5, 1.0)
    kernels.save_kernel(tmp_path / "k.mat", kernel)
    bicubic = kernels.KernelSource.from_path("")
    assert bicubic.kernel_for("a.png") == (None, "cubic") and bicubic.name == "cubic"
    one_file = kernels.KernelSource.from_path(str(tmp_path / "k.mat"))
    for image in ("a.png", "b.png"):
        found, origin = one_file.kernel_for(image)
        np.testing.assert_array_equal(found, kernel)
        assert origin == str(tmp_path / "k.mat")
    assert one_file.description == f"kernel {tmp_path / 'k.mat'} (5x5)"
    assert kernels.KernelSource.from_path(str(tmp_path)).name == str(tmp_path)  # a folder: per image
    with pytest.raises(KernelError, match=r"absent\.mat: kernel file not found"):
        kernels.KernelSource.from_path(str(tmp_path / "absent.mat"))


def test_fixed_kernel_is_checked():
    with pytest.raises(KernelError, match=r"mine: kernel must have a positive sum"):
        kernels.KernelSource.fixed(np.zeros((3, 3)), "mine")


# --------------------------------------------------------------------------- kernels must be kernels

DEMO_KERNEL = pathlib.Path(__file__).resolve().parents[1] / "dataset" / "demo" / "kernel.mat"


def test_a_kernel_ten_times_too_bright_is_refused_saying_its_sum(tmp_path):
    demo = kernels.load_kernel(DEMO_KERNEL)
    path = tmp_path / "bright.mat"
    scipy.io.savemat(path, {"kernel": 10 * demo})
    with pytest.raises(KernelError, match=r"bright\.mat: kernel sums to 10, not 1 .*--normalize-kernel"):
        kernels.load_kernel(path)
    with pytest.raises(KernelError, match=r"sums to 10, not 1"):
        kernels.KernelSource.from_path(str(path))
    np.testing.assert_allclose(kernels.load_kernel(path, normalize=True), demo, rtol=1e-12)
    source = kernels.KernelSource.from_path(str(path), normalize=True)
    np.testing.assert_allclose(source.kernel_for("a.png").kernel, demo, rtol=1e-12)
    assert source.description == f"kernel {path} (21x21), normalised to sum 1 (its sum: 10)"


@pytest.mark.parametrize("factor, refused", [(1.0005, False), (0.9995, False), (1.002, True), (0.99, True)])
def test_the_sum_tolerance_is_one_in_a_thousand(tmp_path, factor, refused):
    kernel = kernels.isotropic_gaussian(9, 2.0) * factor
    if refused:
        with pytest.raises(KernelError, match=f"kernel sums to {kernel.sum():.6g}, not 1"):
            kernels.check_kernel(kernel, "k")
    else:
        np.testing.assert_array_equal(kernels.check_kernel(kernel, "k"), kernel)  # accepted as it is


def test_kernel_folder_normalises_each_file_only_when_asked(tmp_path):
    demo = kernels.load_kernel(DEMO_KERNEL)
    scipy.io.savemat(tmp_path / "baby.mat", {"kernel": 3 * demo})
    with pytest.raises(KernelError, match=r"baby\.mat: kernel sums to 3, not 1"):
        kernels.KernelSource.from_folder(tmp_path).kernel_for("Input/baby.png")
    normalised = kernels.KernelSource.from_path(str(tmp_path), normalize=True)
    np.testing.assert_allclose(normalised.kernel_for("Input/baby.png").kernel, demo, rtol=1e-12)
    assert normalised.description.endswith("each normalised to sum 1")


def test_negative_entries_are_refused_even_when_normalising_but_rounding_noise_is_kept():
    kernel = kernels.isotropic_gaussian(7, 1.0)
    ringing = kernel.copy()
    ringing[0, 0] = -0.01 * kernel.max()
    ringing /= ringing.sum()
    for normalize in (False, True):
        with pytest.raises(KernelError, match=r"mine: kernel has negative entries \(smallest -0\.00"):
            kernels.check_kernel(ringing, "mine", normalize=normalize)
    noisy = kernel.copy()
    noisy[0, 0] = -1e-5 * kernel.max()  # below the tolerance: kept as it is
    np.testing.assert_array_equal(kernels.check_kernel(noisy, "mine"), noisy)


def test_save_kernel_refuses_what_load_kernel_would(tmp_path):
    with pytest.raises(KernelError, match="sums to 2, not 1"):
        kernels.save_kernel(tmp_path / "k.mat", 2 * kernels.isotropic_gaussian(5, 1.0))
    assert not (tmp_path / "k.mat").exists()
