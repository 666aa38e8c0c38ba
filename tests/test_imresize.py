"""Tests for mzsr_tf.imresize: kernel values, reference goldens, the TF path, gradients, bad input."""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import imresize as resize
from mzsr_tf.imresize import imresize, tf_imresize

GOLDEN = pathlib.Path(__file__).parent / "golden" / "imresize_reference.npz"


def _image(shape, seed=0, dtype=np.float64):
    """A non-constant test image: smooth ramps plus noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    base = np.stack([np.sin(3 * rows + c) * np.cos(2 * cols - c) for c in range(shape[2])], axis=-1)
    return (0.5 + 0.3 * base + 0.2 * rng.random(shape)).astype(dtype)


# ---------------------------------------------------------------------------------------- kernels

def test_cubic_values():
    x = np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -1.5, 2.5], np.float64)
    # Keys a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1], -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2].
    expected = [1, 0, 0, 0, 0, 1.5 / 8 - 2.5 / 4 + 1, -0.5 * 3.375 + 2.5 * 2.25 - 6 + 2, 0]
    np.testing.assert_array_equal(resize.cubic(x).numpy(), expected)


def test_linear_and_lanczos_values():
    x = np.array([0.0, 0.25, -0.5, 1.0, -1.0, 2.0, 3.0])
    np.testing.assert_allclose(resize.linear(x).numpy(), [1, 0.75, 0.5, 0, 0, 0, 0], atol=0)
    lanczos2 = resize.lanczos2(x).numpy()
    assert lanczos2[0] == pytest.approx(1.0, abs=1e-12)
    assert lanczos2[1] == pytest.approx(np.sinc(0.25) * np.sinc(0.125), abs=1e-6)
    np.testing.assert_allclose(lanczos2[[3, 4, 5, 6]], 0, atol=1e-6)
    lanczos3 = resize.lanczos3(x).numpy()
    assert lanczos3[2] == pytest.approx(np.sinc(0.5) * np.sinc(0.5 / 3), abs=1e-6)
    assert lanczos3[6] == 0


def test_plan_rows_sum_to_one_and_fold_border():
    weights, indices = resize.resampling_plan(5, 10, 2.0, "cubic", True)
    assert weights.shape == (10, 4) and indices.shape == (10, 4)
    np.testing.assert_allclose(weights.numpy().sum(axis=1), 1, atol=1e-15)
    # Output pixel 1 maps to input coordinate 0.75 (1-based): taps at 1-based -1, 0, 1, 2 -> 0-based 1, 0, 0, 1.
    np.testing.assert_array_equal(indices.numpy()[0], [1, 0, 0, 1])
    assert indices.numpy().min() >= 0 and indices.numpy().max() <= 4


def test_symmetric_fold():
    np.testing.assert_array_equal(resize.symmetric_fold(np.arange(-4, 8), 3).numpy(),
                                  [2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1])


def test_fix_scale_and_size_rules():
    assert resize.fix_scale_and_size((13, 17, 3), None, 2) == (2.0, (26, 34))
    assert resize.fix_scale_and_size((13, 17, 3), None, 1 / 3) == (1 / 3, (5, 6))
    # Both given: the weights use the scale, the shape is the output shape.
    assert resize.fix_scale_and_size((13, 17, 3), (20, 30, 3), 2) == (2.0, (20, 30))
    # Only a shape: the height ratio serves both axes.
    assert resize.fix_scale_and_size((13, 17, 3), (26, 20), None) == (2.0, (26, 20))
    assert resize.fix_scale_and_size((10, 10, 3), None, [2, 3]) == (2.0, (20, 30))


# ------------------------------------------------------------------ goldens from the reference

def _golden_cases():
    with np.load(GOLDEN) as golden:
        return json.loads(str(golden["cases"]))


def _case_id(case):
    return "-".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in case.items())


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


def _run_golden_case(case, golden, dtype):
    kwargs = {k: v for k, v in case.items() if k in ("scale", "output_shape", "antialiasing", "ds_method",
                                                       "kernel_shift_flag", "kernel")}
    if "numeric" in case:
        kwargs["kernel"] = golden[f"kernel_{case['numeric']}"]
    return imresize(golden[f"image_{case['image']}"].astype(dtype), **kwargs)


@pytest.mark.parametrize("index,case", list(enumerate(_golden_cases())),
                         ids=[_case_id(c) for c in _golden_cases()])
def test_matches_reference_golden(index, case, golden):
    expected64 = golden[f"out64_{index}"]
    got64 = _run_golden_case(case, golden, np.float64)
    assert got64.shape == expected64.shape and got64.dtype == np.float64
    np.testing.assert_allclose(got64, expected64, rtol=0, atol=1e-6)
    got32 = _run_golden_case(case, golden, np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, golden[f"out32_{index}"], rtol=0, atol=1e-5)


def test_golden_covers_every_branch():
    cases = _golden_cases()
    named = {c.get("kernel", "cubic") for c in cases if "numeric" not in c}
    assert named == {"cubic", "lanczos2", "lanczos3", "linear"}
    numeric_sizes = {tuple(np.load(GOLDEN)[f"kernel_{c['numeric']}"].shape) for c in cases if "numeric" in c}
    assert {s[0] % 2 for s in numeric_sizes} == {0, 1}
    assert {c.get("ds_method") for c in cases if "numeric" in c} == {"direct", "bicubic"}
    assert any(c.get("kernel_shift_flag") for c in cases)
    assert any("output_shape" in c and "scale" in c for c in cases)
    assert any("output_shape" in c and "scale" not in c for c in cases)
    scales = {c["scale"] for c in cases if isinstance(c.get("scale"), (int, float))}
    assert {2, 3, 4, 0.5, 0.25} <= scales and any(abs(s - 1 / 3) < 1e-12 for s in scales)
    assert any(s not in (2, 3, 4) and s > 1 for s in scales) and any(s * 4 % 1 and s < 1 for s in scales)


# ---------------------------------------------------------------------------------- behaviour

def test_identity_scale_one_is_exact():
    img = _image((9, 11, 3))
    np.testing.assert_allclose(imresize(img, 1.0), img, atol=1e-15)


def test_cubic_reproduces_linear_ramps_inside():
    # Cubic convolution reproduces affine functions away from the border.
    rows, cols = np.meshgrid(np.arange(12.0), np.arange(14.0), indexing="ij")
    img = np.stack([2 * rows + cols, rows - 3 * cols, rows], -1)
    out = imresize(img, 2.0)
    u_rows = np.arange(1, 25) / 2 + 0.25 - 1
    u_cols = np.arange(1, 29) / 2 + 0.25 - 1
    expected = np.stack(np.meshgrid(2 * u_rows, u_cols, indexing="ij"), 0).sum(0)
    np.testing.assert_allclose(out[4:-4, 4:-4, 0], expected[4:-4, 4:-4], atol=1e-12)


def test_dtypes_and_gray():
    img = _image((9, 11, 3))
    assert imresize(img, 2.0).dtype == np.float64
    assert imresize(img.astype(np.float32), 2.0).dtype == np.float32
    assert imresize((img * 255).astype(np.uint8), 2.0).dtype == np.float64
    np.testing.assert_allclose(imresize(img[:, :, 1], 0.5), imresize(img, 0.5)[:, :, 1], atol=1e-15)
    four = np.concatenate([img, img[:, :, :1]], -1)
    np.testing.assert_allclose(imresize(four, 0.5)[:, :, 3], imresize(img, 0.5)[:, :, 0], atol=1e-15)


# ------------------------------------------------------------------------------------ TF path

TF_CASES = [
    dict(scale=2.0), dict(scale=0.5), dict(scale=1 / 3), dict(scale=1.7), dict(scale=0.45, antialiasing=False),
    dict(scale=2.0, kernel="lanczos3"), dict(scale=0.5, kernel="linear"),
    dict(scale=0.5, kernel="numeric"), dict(scale=1 / 3, kernel="numeric"),
    dict(scale=0.5, kernel="numeric", ds_method="bicubic"),
]


def _numeric_kernel(size=6, seed=1):
    k = np.random.default_rng(seed).random((size, size))
    return k / k.sum()


@pytest.mark.parametrize("case", TF_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_tf_matches_numpy_in_tf_function_with_dynamic_shapes(case):
    case = dict(case)
    if case.get("kernel") == "numeric":
        case["kernel"] = _numeric_kernel()
    kernel = case.pop("kernel", "cubic")
    scale = case.pop("scale")

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    def run(images):
        return tf_imresize(images, scale, kernel=kernel, **case)

    for shape in [(13, 17, 3), (16, 12, 3), (21, 9, 3)]:
        img = _image(shape, seed=shape[0])
        expected = imresize(img, scale, kernel=None if isinstance(kernel, str) and kernel == "cubic" else kernel,
                            **case)
        got = run(tf.constant(img, tf.float32)).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert run.experimental_get_tracing_count() == 1


def test_tf_output_shape_tensors_known_at_run_time():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                  tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def run(images, height, width):
        return tf_imresize(images, 2.0, output_shape=(height, width))

    img = _image((13, 17, 3))
    expected = imresize(img, 2.0, output_shape=(25, 35))
    got = run(tf.constant(img[None], tf.float32), tf.constant(25), tf.constant(35)).numpy()
    np.testing.assert_allclose(got[0], expected, atol=1e-5)
    got = run(tf.constant(np.stack([img, img]), tf.float32), tf.constant(26), tf.constant(34)).numpy()
    np.testing.assert_allclose(got[1], imresize(img, 2.0), atol=1e-5)
    assert run.experimental_get_tracing_count() == 1


def test_tf_scale_tensor_and_scale_from_shape():
    img = _image((13, 17, 3))
    for scale in (2.0, 0.5, 1 / 3):
        got = tf_imresize(tf.constant(img), tf.constant(scale, tf.float64))
        np.testing.assert_allclose(got.numpy(), imresize(img, scale), atol=1e-12)
    got = tf_imresize(tf.constant(img), None, output_shape=tf.constant([7, 9]))
    np.testing.assert_allclose(got.numpy(), imresize(img, output_shape=(7, 9)), atol=1e-12)


def test_tf_in_dataset_map():
    images = np.stack([_image((12, 14, 3), seed=s) for s in range(3)]).astype(np.float32)
    kernel = tf.constant(_numeric_kernel(5), tf.float32)
    ds = tf.data.Dataset.from_tensor_slices(images).map(
        lambda hr: tf_imresize(tf_imresize(hr, 0.5, kernel=kernel), 2.0, output_shape=tf.shape(hr)[:2]),
        num_parallel_calls=2)
    for got, img in zip(ds, images):
        expected = imresize(imresize(img.astype(np.float64), 0.5, kernel=_numeric_kernel(5)), 2.0,
                            output_shape=img.shape)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_tf_float16():
    img = _image((12, 12, 3))
    got = tf_imresize(tf.constant(img, tf.float16), 2.0)
    assert got.dtype == tf.float16
    np.testing.assert_allclose(got.numpy().astype(np.float64), imresize(img, 2.0), atol=2e-3)


def test_tf_static_shapes_propagate():
    @tf.function(input_signature=[tf.TensorSpec([None, 13, 17, 3], tf.float32), tf.TensorSpec([], tf.int32)])
    def run(images, width):
        up = tf_imresize(images, 2.0)
        down = tf_imresize(images, 0.5, kernel=tf.ones((5, 5)) / 25)
        sized = tf_imresize(images, 2.0, output_shape=(20, width))
        assert up.shape.as_list() == [None, 26, 34, 3]
        assert down.shape.as_list() == [None, 7, 9, 3]
        assert sized.shape.as_list() == [None, 20, None, 3]
        return up

    run.get_concrete_function()


@pytest.mark.parametrize("kernel,shape", [("cubic", (7, 8, 3)), ("numeric", (7, 8, 3)), ("numeric", (8, 8, 3))])
def test_gradient_matches_finite_differences(kernel, shape):
    # (8, 8) at scale 1/2 keeps every other pixel: the strided-convolution branch; (7, 8) the gather branch.
    img = _image(shape)
    kernel = _numeric_kernel(4) if kernel == "numeric" else kernel
    scale = 0.5 if isinstance(kernel, np.ndarray) else 1.5
    probe = np.random.default_rng(5).random(imresize(img, scale, kernel=kernel).shape)
    x = tf.Variable(img)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf_imresize(x, scale, kernel=kernel) * probe)
    gradient = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(gradient))
    # The resize is linear: the gradient is exact, compare with central differences at a few pixels.
    for index in [(0, 0, 0), (3, 4, 1), (6, 7, 2), (5, 2, 0)]:
        step = np.zeros_like(img)
        step[index] = 1e-3
        numeric = (np.sum(imresize(img + step, scale, kernel=kernel) * probe)
                   - np.sum(imresize(img - step, scale, kernel=kernel) * probe)) / 2e-3
        assert gradient[index] == pytest.approx(numeric, abs=1e-9)


def _scipy_direct(image, kernel, out_h, out_w, scale):
    """Independent 'direct' down-scaling: scipy's correlate ('reflect' border), then numpy's kept rows."""
    from scipy import ndimage

    blurred = np.stack([ndimage.correlate(image[..., c], kernel, mode="reflect")
                        for c in range(image.shape[-1])], axis=-1)
    rows = np.round(np.linspace(0, image.shape[0] - 1 / scale, out_h)).astype(int)
    cols = np.round(np.linspace(0, image.shape[1] - 1 / scale, out_w)).astype(int)
    return blurred[rows][:, cols]


@pytest.mark.parametrize("scale,shape,ksize", [
    (1 / 2.2, (64, 64), 15),   # kept pixels unevenly spaced: blur computed at the kept pixels only
    (1 / 3, (40, 70), 8),      # 40, 70 not multiples of 3; even kernel
    (1 / 2, (40, 70), 7),      # regular: strided depthwise convolution
    (1 / 2, (41, 33), 7),      # 41 rows: not regular
    (1 / 4, (9, 75), 11),      # kernel wider than the image height: the border reflects again
])
def test_numeric_direct_batches_match_scipy(scale, shape, ksize):
    rng = np.random.default_rng(ksize)
    images = np.stack([_image((*shape, 4), seed=s) for s in range(3)])  # 3 images, 4 channels
    kernel = rng.random((ksize, ksize))
    kernel /= kernel.sum()
    out_h, out_w = (int(np.ceil(n * scale)) for n in shape)
    got = tf_imresize(tf.constant(images), scale, kernel=kernel).numpy()
    assert got.shape == (3, out_h, out_w, 4)
    for image, result in zip(images, got):
        np.testing.assert_allclose(result, _scipy_direct(image, kernel, out_h, out_w, scale), rtol=0, atol=1e-12)


@pytest.mark.parametrize("budget,kept_pixels_only", [(0, False), (2 ** 26, True)])
def test_numeric_direct_memory_budget_selects_the_route(budget, kept_pixels_only, monkeypatch):
    # Eager calls: the module's budget and _correlate_at are looked up at call time.
    calls = []
    correlate_at = resize._correlate_at

    def counted_correlate_at(*args):
        calls.append(args)
        return correlate_at(*args)

    monkeypatch.setattr(resize, "_MAX_GATHERED_VALUES", budget)
    monkeypatch.setattr(resize, "_correlate_at", counted_correlate_at)
    images = np.stack([_image((41, 50, 2), seed=s) for s in range(2)])
    kernel = _numeric_kernel(7)
    got = resize._resize_numeric(tf.constant(images), tf.constant(kernel), 14, 17, 1 / 3, "direct").numpy()
    assert bool(calls) == kept_pixels_only
    for image, result in zip(images, got):
        np.testing.assert_allclose(result, _scipy_direct(image, kernel, 14, 17, 1 / 3), rtol=0, atol=1e-12)


def test_numeric_direct_with_a_scale_tensor():
    img = _image((23, 31, 3))
    kernel = _numeric_kernel(5)
    for scale in (0.5, 1 / 2.2, 1 / 3):
        got = tf_imresize(tf.constant(img), tf.constant(scale, tf.float64), kernel=kernel)
        np.testing.assert_allclose(got.numpy(), imresize(img, scale, kernel=kernel), atol=1e-12)


@pytest.mark.parametrize("shape,scale", [((8, 8, 3), 0.5), ((13, 11, 3), 0.5), ((13, 11, 3), 1 / 2.2)])
def test_numeric_kernel_gradient_matches_finite_differences(shape, scale):
    # (8, 8) at 1/2: strided branch; the others: blur computed at the kept pixels.
    img = _image(shape, seed=2)
    kernel = _numeric_kernel(5, seed=3)
    probe = np.random.default_rng(6).random(imresize(img, scale, kernel=kernel).shape)
    weights = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf_imresize(tf.constant(img), scale, kernel=weights) * probe)
    gradient = tape.gradient(loss, weights).numpy()
    assert np.all(np.isfinite(gradient))
    # The output is linear in the kernel: central differences are exact up to round-off.
    for index in [(0, 0), (2, 2), (4, 1), (1, 3)]:
        step = np.zeros_like(kernel)
        step[index] = 1e-3
        numeric = (np.sum(imresize(img, scale, kernel=kernel + step) * probe)
                   - np.sum(imresize(img, scale, kernel=kernel - step) * probe)) / 2e-3
        assert gradient[index] == pytest.approx(numeric, abs=1e-9)


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs,message", [
    (dict(), "imresize needs scale or output_shape, got neither"),
    (dict(scale=0), "scale must be positive and finite, got 0"),
    (dict(scale=-2.0), "scale must be positive and finite"),
    (dict(scale=float("nan")), "scale must be positive and finite"),
    (dict(output_shape=(0, 4)), r"output_shape must be positive, got \(0, 4\)"),
    (dict(output_shape=(4.5, 4)), "output_shape must hold whole numbers"),
    (dict(output_shape=(4,)), "output_shape needs at least"),
    (dict(scale=2, kernel="bicubic"), "unknown kernel 'bicubic'"),
    (dict(scale=2, kernel=np.ones((3, 3)) / 9), r"a numeric kernel only down-scales \(scale <= 1\), got scale 2.0"),
    (dict(scale=0.5, kernel=np.ones(3)), r"a numeric kernel must be a non-empty 2-D array, got shape \(3,\)"),
    (dict(scale=0.5, kernel=np.ones((3, 3)), ds_method="area"), "ds_method must be 'direct' or 'bicubic', got 'area'"),
])
def test_imresize_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        imresize(_image((6, 6, 3)), **kwargs)


def test_imresize_bad_images():
    with pytest.raises(ValueError, match=r"expected an \[H, W, C\] or \[H, W\] image, got shape \(2, 6, 6, 3\)"):
        imresize(np.zeros((2, 6, 6, 3)), 2)
    with pytest.raises(ValueError, match="expected a numeric image, got dtype <U1"):
        imresize(np.array([["a"]]), 2)


def test_tf_imresize_bad_arguments():
    with pytest.raises(ValueError, match=r"tf_imresize: expected \[H, W, C\] or \[N, H, W, C\] images"):
        tf_imresize(tf.zeros((4, 4)), 2.0)
    with pytest.raises(ValueError, match="tf_imresize: expected float images, got int32"):
        tf_imresize(tf.zeros((4, 4, 3), tf.int32), 2.0)
    with pytest.raises(ValueError, match="tf_imresize: unknown kernel 'box'"):
        tf_imresize(tf.zeros((4, 4, 3)), 2.0, kernel="box")
    with pytest.raises(ValueError, match=r"tf_imresize: a numeric kernel only down-scales"):
        tf_imresize(tf.zeros((4, 4, 3)), 2.0, kernel=tf.ones((3, 3)))
    with pytest.raises(ValueError, match="tf_imresize: scale must be positive and finite, got -1"):
        tf_imresize(tf.zeros((4, 4, 3)), -1.0)
