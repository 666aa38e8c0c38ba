"""Tests for mzsr_tf.model: architecture, names, the two calling conventions, precision, gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf.config import ModelConfig
from mzsr_tf.model import (MZSRNet, PARAM_NAMES, count_params, forward, kernel_initializer,
                           param_names, param_shapes)

TINY = ModelConfig(width=5, depth=3, channels=3)

# The reference's variables (model.py of JWSoh/MZSR), written out by hand.
REFERENCE_SHAPES = [("MODEL/conv1/kernel", (3, 3, 3, 64)), ("MODEL/conv1/bias", (64,))]
for _i in range(2, 8):
    REFERENCE_SHAPES += [(f"MODEL/conv{_i}/kernel", (3, 3, 64, 64)), (f"MODEL/conv{_i}/bias", (64,))]
REFERENCE_SHAPES += [("MODEL/conv8/kernel", (3, 3, 64, 3)), ("MODEL/conv8/bias", (3,))]


@pytest.fixture
def float16_policy():
    """Run a test under the mixed_float16 Keras policy and restore the previous policy after it."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def randomize(model, seed=0, bias_std=0.05):
    """Give every variable random values (biases too, which start at zero)."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        std = bias_std if len(variable.shape) == 1 else 1.0 / np.sqrt(np.prod(variable.shape[:3]))
        variable.assign(rng.normal(0.0, std, variable.shape).astype(np.float32))


def numpy_reference(params, x):
    """The reference network (conv SAME 3x3 + bias, ReLU on all but the last, x + out) in float64."""
    h = x.astype(np.float64)
    num_convs = len(params) // 2
    for i in range(num_convs):
        kernel, bias = (np.asarray(p, np.float64) for p in params[2 * i:2 * i + 2])
        padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
        height, width = h.shape[1:3]
        out = np.zeros(h.shape[:3] + (kernel.shape[3],))
        for dy in range(3):
            for dx in range(3):
                out += np.einsum("nhwc,cd->nhwd", padded[:, dy:dy + height, dx:dx + width], kernel[dy, dx])
        h = out + bias
        if i < num_convs - 1:
            h = np.maximum(h, 0.0)
    return x + h


def test_parameter_count_is_the_papers():
    assert MZSRNet().count_params() == 225_091
    assert count_params() == 225_091
    assert count_params(TINY) == (27 * 5 + 5) + (45 * 5 + 5) + (45 * 3 + 3)


def test_names_and_shapes_are_the_references():
    assert PARAM_NAMES == tuple(name for name, _ in REFERENCE_SHAPES)
    assert list(param_shapes().items()) == REFERENCE_SHAPES


def test_trainable_variables_follow_param_names_order():
    model = MZSRNet()
    assert model.param_names == PARAM_NAMES
    assert [v.path for v in model.trainable_variables] == [n[len("MODEL/"):] for n in PARAM_NAMES]
    assert [tuple(v.shape) for v in model.trainable_variables] == [s for _, s in REFERENCE_SHAPES]
    assert all(v.dtype == "float32" for v in model.trainable_variables)


def test_narrow_config_names_and_shapes():
    assert param_names(TINY) == ("MODEL/conv1/kernel", "MODEL/conv1/bias", "MODEL/conv2/kernel",
                                 "MODEL/conv2/bias", "MODEL/conv3/kernel", "MODEL/conv3/bias")
    model = MZSRNet(TINY)
    assert [tuple(v.shape) for v in model.trainable_variables] == [
        (3, 3, 3, 5), (5,), (3, 3, 5, 5), (5,), (3, 3, 5, 3), (3,)]


def test_forward_matches_an_independent_numpy_network():
    model = MZSRNet(TINY)
    randomize(model)
    x = np.random.default_rng(1).random((2, 7, 6, 3)).astype(np.float32)
    expected = numpy_reference([v.numpy() for v in model.trainable_variables], x)
    np.testing.assert_allclose(forward(model.trainable_variables, x).numpy(), expected, rtol=0, atol=2e-6)


def test_model_and_forward_agree_exactly_eager_and_in_tf_function():
    model = MZSRNet()
    randomize(model)
    x = tf.constant(np.random.default_rng(2).random((2, 23, 18, 3)), tf.float32)
    by_model = model(x).numpy()
    assert by_model.shape == (2, 23, 18, 3) and by_model.dtype == np.float32
    np.testing.assert_array_equal(forward(model.trainable_variables, x).numpy(), by_model)
    graph_forward = tf.function(lambda images: forward(model.trainable_variables, images))
    graph_model = tf.function(lambda images: model(images))
    np.testing.assert_array_equal(graph_forward(x).numpy(), by_model)
    np.testing.assert_array_equal(graph_model(x).numpy(), by_model)


def test_residual_makes_zero_weights_the_identity():
    model = MZSRNet(TINY)
    for variable in model.trainable_variables:
        variable.assign(tf.zeros_like(variable))
    x = np.random.default_rng(3).random((1, 5, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), x)


def test_mixed_float16_policy_runs_float16_convolutions_with_float32_output(float16_policy):
    model = MZSRNet()
    randomize(model)
    assert [layer.compute_dtype for layer in model.layers if layer.name.startswith("conv")] == ["float16"] * 8
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    x = tf.constant(np.random.default_rng(4).random((1, 16, 20, 3)), tf.float32)
    out16 = model(x)
    assert out16.dtype == tf.float32
    np.testing.assert_array_equal(forward(model.trainable_variables, x).numpy(), out16.numpy())
    exact = forward(model.trainable_variables, x, compute_dtype=tf.float32).numpy()
    error = np.abs(out16.numpy() - exact).max()
    assert 0 < error < 2e-2  # float16 compute really happened, and stayed close


def test_policy_is_float32_outside_the_float16_test():
    assert keras.mixed_precision.global_policy().name == "float32"


def test_forward_float16_input_computes_in_float16_and_returns_float32():
    model = MZSRNet(TINY)
    randomize(model)
    x = np.random.default_rng(5).random((1, 9, 9, 3)).astype(np.float16)
    out = forward(model.trainable_variables, x)
    assert out.dtype == tf.float32
    as_float32 = forward(model.trainable_variables, x.astype(np.float32)).numpy()
    assert 0 < np.abs(out.numpy() - as_float32).max() < 1e-2


def test_forward_in_float64():
    model = MZSRNet(TINY)
    randomize(model)
    params = [tf.constant(v.numpy(), tf.float64) for v in model.trainable_variables]
    x = np.random.default_rng(6).random((1, 6, 8, 3))
    out = forward(params, x)
    assert out.dtype == tf.float64
    np.testing.assert_allclose(out.numpy(), numpy_reference([p.numpy() for p in params], x), rtol=0, atol=1e-12)


def test_second_order_gradient_through_forward_matches_finite_differences():
    """d/dθ of the query loss after one inner SGD step, in tf.function with nested tapes (float64)."""
    model = MZSRNet(ModelConfig(width=4, depth=3))
    randomize(model, seed=7, bias_std=0.1)
    params = [tf.constant(v.numpy(), tf.float64) for v in model.trainable_variables]
    rng = np.random.default_rng(8)
    support, support_label, query, query_label = (tf.constant(rng.random((2, 6, 6, 3))) for _ in range(4))
    inner_lr = 0.5

    def query_loss_after_step(theta):
        with tf.GradientTape() as inner:
            inner.watch(theta)
            loss = tf.reduce_mean((forward(theta, support) - support_label) ** 2)
        grads = inner.gradient(loss, theta)
        fast = [w - inner_lr * g for w, g in zip(theta, grads)]
        return tf.reduce_mean((forward(fast, query) - query_label) ** 2)

    @tf.function
    def meta_gradient(theta):
        with tf.GradientTape() as outer:
            outer.watch(theta)
            loss = query_loss_after_step(theta)
        return outer.gradient(loss, theta)

    grads = meta_gradient(params)
    eps = 1e-6
    for index, position in [(0, (1, 2, 0, 3)), (3, (2,)), (4, (0, 1, 2, 1))]:
        def loss_at(delta):
            shifted = [p.numpy().copy() for p in params]
            shifted[index][position] += delta
            return float(query_loss_after_step([tf.constant(s) for s in shifted]))
        numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
        np.testing.assert_allclose(grads[index].numpy()[position], numeric, rtol=1e-6, atol=1e-10)


def test_gradients_reach_keras_variables_inside_tf_function():
    model = MZSRNet(TINY)
    randomize(model)
    x = tf.constant(np.random.default_rng(9).random((1, 8, 8, 3)), tf.float32)

    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(forward(model.trainable_variables, x) - 0.5))
        return tape.gradient(loss, model.trainable_variables)

    result = grads()
    assert len(result) == 6 and all(g is not None and np.abs(g.numpy()).max() > 0 for g in result)


def test_initialisation_is_tf1_variance_scaling_fan_in_truncated_normal():
    model = MZSRNet(seed=3)
    weights = {n: v.numpy() for n, v in zip(PARAM_NAMES, model.trainable_variables)}
    for name, fan_in in [("MODEL/conv1/kernel", 27), ("MODEL/conv2/kernel", 576), ("MODEL/conv8/kernel", 576)]:
        std = np.sqrt(1.0 / fan_in)
        values = weights[name].ravel()
        assert abs(values.std() / std - 1) < 0.06, name
        assert abs(values.mean()) < 0.15 * std, name
        # truncated at two standard deviations of the underlying normal (std / 0.8796...)
        assert np.abs(values).max() <= 2 * std / 0.87962566103423978 + 1e-7, name
    conv2 = weights["MODEL/conv2/kernel"].ravel()
    assert np.mean(np.abs(conv2) > 2.0 * np.sqrt(1 / 576)) > 0.01  # not a uniform or clipped law
    for name in PARAM_NAMES[1::2]:
        np.testing.assert_array_equal(weights[name], 0.0)


def test_seed_makes_initialisation_reproducible():
    first, again, other = (MZSRNet(TINY, seed=s).trainable_variables for s in (11, 11, 12))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())
    assert kernel_initializer(1).get_config()["mode"] == "fan_in"


def test_bad_config_and_params_are_clear_errors():
    with pytest.raises(ValueError, match=r"depth must be >= 2 .*got 1"):
        MZSRNet(ModelConfig(depth=1))
    with pytest.raises(ValueError, match=r"width and \.channels must be positive"):
        MZSRNet(ModelConfig(width=0))
    with pytest.raises(ValueError, match=r"forward needs 2 \* depth parameters .*got 5"):
        forward([tf.zeros((3, 3, 3, 3))] * 5, tf.zeros((1, 4, 4, 3)))
