"""The adaptation loop: plain-SGD steps of ``mzsr_tf.inner.inner_step`` on one image's son.

- ``sgd_loop``: ``len(rates)`` steps as one ``tf.while_loop`` inside a graph; the meta-test
  (``mzsr_tf.meta_test.MetaTester``) and the ZSSR baseline (``mzsr_tf.evaluate``) run it;
- ``adapt_steps``: the same steps eager, one Python step at a time, as a readable reference;
- ``sgd_steps``: eager steps on whatever computes the loss and its gradients (the tiled meta-test's
  ``mzsr_tf.tiling.Tiler.loss_and_gradients``, for images too large for one graph).

What to adapt on (the son, its cubic upscale, the learning rates) and what to do with the adapted
weights is the meta-test's business (``mzsr_tf.meta_test``).
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import tensorflow as tf

from mzsr_tf import inner
from mzsr_tf.model import forward


def sgd_loop(net: inner.ForwardFn, params: Sequence[tf.Tensor], son_ilr: tf.Tensor, father: tf.Tensor,
             rates: tf.Tensor, *, loss_scale: float = 1.0, state: Any = (), after_step: Callable = None):
    """``len(rates)`` adaptation steps as one ``tf.while_loop`` (graph mode; the meta-test's loop).

    Step ``i`` is ``inner.inner_step`` on ``L1(father, net(params, son_ilr))`` with ``rates[i]``
    (``son_ilr``, ``father``: ``[1, H, W, C]``). ``after_step(n, params, state) -> state`` runs after
    step ``n`` (1-based) with the adapted parameters, threading ``state`` (e.g. a TensorArray of
    SR images). Returns ``(params, son_losses [len(rates)], state)``.
    """
    def step(i, params, losses, state):
        params, loss = inner.inner_step(net, params, son_ilr, father, rates[i], loss_scale=loss_scale)
        if after_step is not None:
            state = after_step(i + 1, params, state)
        return i + 1, params, losses.write(i, loss), state

    num_steps = tf.size(rates)
    _, params, losses, state = tf.while_loop(
        lambda i, *_: i < num_steps, step,
        (tf.constant(0), list(params), tf.TensorArray(tf.float32, size=num_steps), state))
    return params, losses.stack(), state


def adapt_steps(params: Sequence[tf.Tensor], son_ilr: tf.Tensor, father: tf.Tensor,
                rates: Sequence[float]) -> Tuple[List[tf.Tensor], List[tf.Tensor]]:
    """The bare adaptation loop, eager and one Python step at a time (for tests and teaching).

    ``son_ilr`` and ``father`` are ``[1, H, W, C]``; returns the adapted parameters and the losses.
    """
    params = list(params)
    losses = []
    for rate in rates:
        params, loss = inner.inner_step(forward, params, son_ilr, father, rate)
        losses.append(loss)
    return params, losses


def sgd_steps(loss_and_gradients: Callable[[List[tf.Tensor]], Tuple[tf.Tensor, List[tf.Tensor]]],
              params: Sequence[tf.Tensor], rates: Sequence[float],
              after_step: Callable[[int, List[tf.Tensor]], None] = None) -> Tuple[List[tf.Tensor], List[float]]:
    """``len(rates)`` plain-SGD steps ``p - rate * g`` (float32, as ``inner.inner_step``), eager.

    ``loss_and_gradients(params) -> (loss, grads)`` gives the loss before the step and its gradients;
    ``after_step(n, params)`` runs after step ``n`` (1-based). Returns the adapted parameters and the losses.
    """
    params = [tf.convert_to_tensor(p) for p in params]
    losses = []
    for n, rate in enumerate(rates, 1):
        loss, grads = loss_and_gradients(params)
        rate = tf.constant(rate, params[0].dtype)
        params = [p - rate * g for p, g in zip(params, grads)]
        losses.append(float(loss))
        if after_step is not None:
            after_step(n, params)
    return params, losses
