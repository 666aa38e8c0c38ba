"""The inner update shared by meta-training (Algorithm 1) and meta-test (Algorithm 2).

Every gradient step that adapts the network to one task or one image goes through ``inner_step``:

    θ' = θ - α ∇_θ L1(forward(θ, x), y)

``params`` are always a list of tensors in ``mzsr_tf.model.PARAM_NAMES`` order (float32), so the
same code runs on ``model.trainable_variables`` (meta-test) and on fast weights that are themselves
functions of the meta-parameters (meta-training, where an enclosing ``tf.GradientTape`` records the
inner gradient computation and so yields second-order meta-gradients).

``first_order=True`` stops the gradient through the inner gradients (the first-order MAML
approximation); it is an explicit argument, not a hidden switch.
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import tensorflow as tf

ForwardFn = Callable[[Sequence[tf.Tensor], tf.Tensor], tf.Tensor]


def l1_loss(label: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
    """Mean absolute error over all elements (TF1's ``tf.losses.absolute_difference``).

    Computed in float32, or in float64 when ``output`` is float64 (gradient checks).
    """
    dtype = tf.float64 if output.dtype == tf.float64 else tf.float32
    return tf.reduce_mean(tf.abs(tf.cast(label, dtype) - tf.cast(output, dtype)))


def loss_and_gradients(forward: ForwardFn, params: Sequence[tf.Tensor], inputs: tf.Tensor, labels: tf.Tensor,
                       loss_scale: float = 1.0) -> Tuple[tf.Tensor, List[tf.Tensor]]:
    """``L1(labels, forward(params, inputs))`` and its gradients with respect to ``params`` (``inner_step``'s
    arguments; an enclosing tape records the computation, for second-order meta-gradients)."""
    # Keras 3 variables are not tf.Variables: read them as tensors (an enclosing tape still sees the read)
    params = [p if isinstance(p, tf.Variable) else tf.convert_to_tensor(p) for p in params]
    with tf.GradientTape() as tape:
        for p in params:
            if not isinstance(p, tf.Variable):
                tape.watch(p)
        loss = l1_loss(labels, forward(params, inputs))
        scaled_loss = loss * loss_scale if loss_scale != 1.0 else loss
    grads = tape.gradient(scaled_loss, params)
    if loss_scale != 1.0:
        grads = [g / loss_scale for g in grads]
    return loss, grads


def inner_step(forward: ForwardFn, params: Sequence[tf.Tensor], inputs: tf.Tensor, labels: tf.Tensor,
               inner_lr, first_order: bool = False,
               loss_scale: float = 1.0) -> Tuple[List[tf.Tensor], tf.Tensor]:
    """One plain-SGD step on the L1 loss; returns ``(new_params, loss_before_the_step)``.

    Args:
      forward: ``forward(params, x)`` mapping ``[N, H, W, C]`` float32 inputs to outputs of that shape.
      params: the current parameters (variables or tensors), float32 (float64 in gradient checks).
      inputs, labels: ``[N, H, W, C]`` float32 in [0, 1]: the (upscaled) LR input and its HR label.
      inner_lr: the step's learning rate (Python float or scalar tensor).
      first_order: stop the gradient through the inner gradient (no second-order terms).
      loss_scale: multiply the loss by this before differentiating and divide the gradients by it
        afterwards. Under ``mixed_float16`` the backward pass runs in float16, where the per-pixel
        gradients of a mean L1 loss (~1/N) would underflow; a static scale of e.g. 1024 keeps them
        representable. The result is mathematically unchanged; use 1.0 in float32.

    Example::

        model = MZSRNet()
        params = model.trainable_variables                     # read, never written
        for rate in (0.02, 0.01):                              # two steps on one image pair
            params, loss = inner_step(forward, params, ilr, hr, rate)
        sr = forward(params, ilr)                              # ilr, hr, sr: [1, H, W, 3] in [0, 1]
    """
    params = [p if isinstance(p, tf.Variable) else tf.convert_to_tensor(p) for p in params]
    loss, grads = loss_and_gradients(forward, params, inputs, labels, loss_scale)
    if first_order:
        grads = [tf.stop_gradient(g) for g in grads]
    inner_lr = tf.cast(inner_lr, params[0].dtype)
    new_params = [p - inner_lr * g for p, g in zip(params, grads)]
    return new_params, loss


def loss_weights(step, inner_steps: int = 5, anneal_steps: float = 10000 / 3,
                 floor: float = 0.03) -> tf.Tensor:
    """Per-inner-step weights of the query losses (MAML++ multi-step loss), float32 ``[inner_steps]``.

    All weights start at ``1 / inner_steps``. With every meta-iteration the first ``inner_steps - 1``
    weights decay linearly by ``1 / inner_steps / anneal_steps`` down to ``floor / inner_steps``, and
    the last one grows by ``inner_steps - 1`` times that up to ``1 - (inner_steps - 1) * floor /
    inner_steps``: after ``anneal_steps`` iterations the loss is (almost) only the last step's.
    This is the reference's ``get_loss_weights``.
    """
    k = float(inner_steps)
    step = tf.cast(step, tf.float32)
    decay_rate = 1.0 / k / anneal_steps
    min_value = floor / k
    early = tf.maximum(1.0 / k - step * decay_rate, min_value) * tf.ones([inner_steps - 1])
    last = tf.minimum(1.0 / k + step * (k - 1.0) * decay_rate, 1.0 - (k - 1.0) * min_value)
    return tf.concat([early, tf.reshape(last, [1])], axis=0)


INNER_LOSS_SCALE_FLOAT16 = 1024.0
"""Static loss scale of the inner steps under ``mixed_float16``: the per-pixel gradients of a mean L1
loss (~1e-5) are subnormal in float16; scaling the loss by 1024 before differentiating (and the
gradients back after) keeps them representable without changing the update."""


def inner_loss_scale(precision: str) -> float:
    """The static loss scale of the inner steps for a precision (``config.PRECISIONS``)."""
    return INNER_LOSS_SCALE_FLOAT16 if precision == "mixed_float16" else 1.0
