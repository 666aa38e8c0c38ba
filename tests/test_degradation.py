"""Tests for mzsr_tf.degradation: the reference's g20 inputs regenerated bit-exactly, TF path, noise, BP."""
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import degradation
from mzsr_tf.imresize import imresize
from mzsr_tf.kernels import isotropic_gaussian, load_kernel
from mzsr_tf.metrics import to_uint8

SET5 = ["baby", "bird", "butterfly", "head", "woman"]


def _read_png(path):
    import imageio.v2 as imageio

    return np.asarray(imageio.imread(path))


@pytest.fixture(scope="module")
def g20(reference_dir):
    kernel = load_kernel(reference_dir / "Input" / "g20" / "kernel.mat")
    pairs = [(_read_png(reference_dir / "GT" / "Set5" / f"{name}_GT.png"),
              _read_png(reference_dir / "Input" / "g20" / "Set5" / f"{name}.png")) for name in SET5]
    return kernel, pairs


def test_regenerates_reference_g20_inputs_bit_exactly(g20):
    # Recipe: GT / 255 in float64, kernel.mat, scale 2, direct subsampling, no kernel shift, uint8 rounding.
    kernel, pairs = g20
    for gt, lr in pairs:
        ours = to_uint8(degradation.degrade(gt / 255.0, kernel, 2))
        assert ours.shape == lr.shape
        np.testing.assert_array_equal(ours, lr)


def test_tf_degrade_float32_within_one_grey_level_of_g20(g20):
    kernel, pairs = g20
    for gt, lr in pairs:
        ours = to_uint8(degradation.tf_degrade(tf.constant(gt / 255.0, tf.float32), kernel, 2).numpy())
        difference = np.abs(ours.astype(int) - lr.astype(int))
        assert difference.max() <= 1 and (difference > 0).sum() <= 8


def test_tf_degrade_float64_bit_exact(g20):
    kernel, pairs = g20
    gt, lr = pairs[2]
    np.testing.assert_array_equal(to_uint8(degradation.tf_degrade(gt / 255.0, kernel, 2).numpy()), lr)


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def test_degrade_is_clipped_imresize():
    hr = _image((16, 18, 3)) * 1.3 - 0.1
    kernel = isotropic_gaussian(7, 2.0)
    for ds_method in ("direct", "bicubic"):
        np.testing.assert_array_equal(
            degradation.degrade(hr, kernel, 2, ds_method=ds_method),
            np.clip(imresize(hr, scale=0.5, kernel=kernel, ds_method=ds_method), 0, 1))
    np.testing.assert_array_equal(degradation.degrade(hr, "cubic", 3),
                                  np.clip(imresize(hr, scale=1 / 3, kernel="cubic"), 0, 1))


def test_degrade_noise_uses_rng():
    hr = _image((16, 16, 3))
    kernel = isotropic_gaussian(5, 1.0)
    clean = degradation.degrade(hr, kernel, 2)
    noisy = degradation.degrade(hr, kernel, 2, noise_std=0.01, rng=np.random.default_rng(9))
    expected = np.clip(clean + np.random.default_rng(9).standard_normal(clean.shape) * 0.01, 0, 1)
    np.testing.assert_array_equal(noisy, expected)


@pytest.mark.parametrize("ds_method", ["direct", "bicubic"])
def test_tf_degrade_matches_numpy_dynamic_shapes(ds_method):
    kernel = isotropic_gaussian(15, 2.0).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    def lr_of(hr):
        return degradation.tf_degrade(hr, tf.constant(kernel), 2, ds_method=ds_method)

    for shape in [(20, 22, 3), (17, 15, 3)]:
        hr = _image(shape, seed=shape[0]).astype(np.float32)
        np.testing.assert_allclose(lr_of(tf.constant(hr)).numpy(),
                                   degradation.degrade(hr, kernel, 2, ds_method=ds_method), atol=1e-5)
    assert lr_of.experimental_get_tracing_count() == 1


def test_tf_degrade_cubic_and_noise_seeded():
    hr = tf.constant(_image((2, 12, 12, 3)), tf.float32)
    a = degradation.tf_degrade(hr, "cubic", 2, noise_std=0.05, seed=tf.constant([1, 2]))
    b = degradation.tf_degrade(hr, "cubic", 2, noise_std=0.05, seed=tf.constant([1, 2]))
    clean = degradation.tf_degrade(hr, "cubic", 2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.shape == (2, 6, 6, 3) and 0 < np.abs(a.numpy() - clean.numpy()).max() < 0.3
    np.testing.assert_allclose(clean.numpy()[1], np.clip(imresize(hr.numpy()[1].astype(np.float64), 0.5), 0, 1),
                               atol=1e-5)


def test_back_projection_formula():
    rng = np.random.default_rng(3)
    sr = rng.random((16, 14, 3))
    lr = rng.random((8, 7, 3))
    kernel = isotropic_gaussian(7, 2.0)
    expected = np.clip(sr + imresize(lr - imresize(sr, scale=0.5, output_shape=lr.shape, kernel=kernel),
                                     scale=2, output_shape=sr.shape, kernel="cubic"), 0, 1)
    sr_before = sr.copy()
    np.testing.assert_allclose(degradation.back_projection(sr, lr, kernel, "cubic", 2), expected, atol=1e-12)
    np.testing.assert_array_equal(sr, sr_before)  # not modified in place
    ours_tf = degradation.tf_back_projection(tf.constant(sr), tf.constant(lr), kernel, "cubic", 2)
    np.testing.assert_allclose(ours_tf.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("kwargs,message", [
    (dict(kernel="bilinear", scale=2), r"kernel must be a 2-D array or 'cubic', got 'bilinear'"),
    (dict(kernel="cubic", scale=0.5), r"scale is the super-resolution factor and must be a number >= 1, got 0.5"),
    (dict(kernel="cubic", scale=2, ds_method="nearest"), r"ds_method must be 'direct' or 'bicubic', got 'nearest'"),
    (dict(kernel="cubic", scale=2, noise_std=-1.0), r"noise_std must be a number >= 0"),
    (dict(kernel="cubic", scale=2, noise_std=0.1), r"noise_std > 0 needs rng"),
])
def test_degrade_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        degradation.degrade(np.zeros((8, 8, 3)), **kwargs)


def test_tf_degrade_noise_needs_seed():
    with pytest.raises(ValueError, match=r"tf_degrade: noise needs seed"):
        degradation.tf_degrade(tf.zeros((8, 8, 3)), "cubic", 2, noise_std=0.1)


def test_back_projection_matches_reference_golden(golden_dir):
    with np.load(golden_dir / "back_projection_reference.npz") as golden:
        kernel, lr = golden["kernel"], golden["lr"]
        np.testing.assert_allclose(degradation.degrade(golden["hr"], kernel, 2), np.clip(lr, 0, 1), atol=1e-12)
        current = golden["sr"]
        for step in range(4):
            current = degradation.back_projection(current, lr, kernel, "cubic", 2.0, "direct")
            np.testing.assert_allclose(current, golden[f"bp_{step}"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(degradation.back_projection(golden["sr"], lr, kernel, "cubic", 2.0, "bicubic"),
                                   golden["bp_bicubic"], rtol=0, atol=1e-6)
        tf_current = tf.constant(golden["sr"], tf.float32)
        for step in range(4):
            tf_current = degradation.tf_back_projection(tf_current, tf.constant(lr, tf.float32), kernel, "cubic", 2.0)
        np.testing.assert_allclose(tf_current.numpy(), golden["bp_3"], rtol=0, atol=1e-5)
