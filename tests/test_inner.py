"""Tests of the shared inner update and the multi-step loss weights."""
import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import inner


def _affine_forward(params, x):
    """A two-parameter 'network' y = w * x + b whose gradients are easy to write by hand."""
    w, b = params
    return w * x + b


@pytest.mark.parametrize("step, early, last", [
    # hand computation of the reference formula with K = 5, anneal 10000/3, floor 0.03:
    # decay = 0.2 / (10000/3) = 6e-5; early = max(0.2 - 6e-5 * s, 0.006); last = min(0.2 + 4 * 6e-5 * s, 0.976)
    (0, 0.2, 0.2),
    (1000, 0.14, 0.44),
    (2500, 0.05, 0.8),
    (5000, 0.006, 0.976),
    (100000, 0.006, 0.976),
])
def test_loss_weights_follow_the_reference_formula(step, early, last):
    weights = inner.loss_weights(step).numpy()
    np.testing.assert_allclose(weights[:4], [early] * 4, rtol=1e-5)
    np.testing.assert_allclose(weights[4], last, rtol=1e-5)


def test_loss_weights_other_step_counts():
    weights = inner.loss_weights(0, inner_steps=3).numpy()
    np.testing.assert_allclose(weights, [1 / 3] * 3, rtol=1e-6)


def test_l1_loss_is_mean_absolute_error():
    label = tf.constant([[0.0, 1.0], [0.5, 0.25]])
    output = tf.constant([[0.5, 0.0], [0.5, 1.0]])
    assert inner.l1_loss(label, output).numpy() == pytest.approx((0.5 + 1.0 + 0.0 + 0.75) / 4)


def test_inner_step_is_sgd_with_the_hand_gradient():
    x = tf.constant([1.0, 2.0, -1.0, 3.0])
    y = tf.constant([0.0, 5.0, 0.0, 1.0])
    params = [tf.Variable(1.5), tf.Variable(0.25)]
    new_params, loss = inner.inner_step(_affine_forward, params, x, y, inner_lr=0.1)
    residual = 1.5 * x.numpy() + 0.25 - y.numpy()
    sign = np.sign(residual)
    grad_w = np.mean(sign * x.numpy())
    grad_b = np.mean(sign)
    assert loss.numpy() == pytest.approx(np.mean(np.abs(residual)))
    assert new_params[0].numpy() == pytest.approx(1.5 - 0.1 * grad_w)
    assert new_params[1].numpy() == pytest.approx(0.25 - 0.1 * grad_b)


def test_inner_step_loss_scale_does_not_change_the_step():
    x = tf.random.stateless_uniform([16], seed=[1, 2])
    y = tf.random.stateless_uniform([16], seed=[3, 4])
    params = [tf.constant(0.7), tf.constant(-0.1)]
    plain, _ = inner.inner_step(_affine_forward, params, x, y, 0.05)
    scaled, _ = inner.inner_step(_affine_forward, params, x, y, 0.05, loss_scale=1024.0)
    np.testing.assert_allclose([p.numpy() for p in plain], [p.numpy() for p in scaled], rtol=1e-6)


def _smooth_forward(params, x):
    """A nonlinear forward whose second derivatives are non-zero (tanh), in float64."""
    w, b = params
    return tf.tanh(w * x + b)


def _meta_objective(meta_params, first_order, x_s, y_s, x_q, y_q):
    params = list(meta_params)
    for _ in range(2):
        params, _ = inner.inner_step(_smooth_forward, params, x_s, y_s, 0.3, first_order=first_order)
    return inner.l1_loss(y_q, _smooth_forward(params, x_q))


def test_second_order_meta_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x_s, x_q = (tf.constant(rng.uniform(-1, 1, 32)) for _ in range(2))
    y_s, y_q = (tf.constant(rng.uniform(-0.5, 0.5, 32)) for _ in range(2))
    theta = np.array([0.8, 0.1])

    meta = [tf.Variable(theta[0]), tf.Variable(theta[1])]
    with tf.GradientTape() as tape:
        objective = _meta_objective(meta, False, x_s, y_s, x_q, y_q)
    second = np.array([g.numpy() for g in tape.gradient(objective, meta)])
    with tf.GradientTape() as tape:
        objective = _meta_objective(meta, True, x_s, y_s, x_q, y_q)
    first = np.array([g.numpy() for g in tape.gradient(objective, meta)])

    eps = 1e-6
    numeric = np.zeros(2)
    for i in range(2):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += eps
        minus[i] -= eps
        f = lambda t: _meta_objective([tf.constant(t[0]), tf.constant(t[1])], False,
                                      x_s, y_s, x_q, y_q).numpy()
        numeric[i] = (f(plus) - f(minus)) / (2 * eps)
    np.testing.assert_allclose(second, numeric, rtol=1e-5, atol=1e-9)
    # the first-order approximation drops the Hessian terms, so it is measurably different
    assert np.max(np.abs(first - numeric)) > 1e-3
