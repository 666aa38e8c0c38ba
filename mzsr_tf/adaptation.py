"""Meta-test (the paper's Algorithm 2): adapt the network to one low-resolution image, then apply it.

For an LR image ``lr`` (float32 HWC in [0, 1]) with blur kernel ``k`` and scale ``s``:

1. the "son" is ``degrade(lr, k, s)``: the LR image itself degraded once more (plus optional noise);
   the son's cubic upscale to ``lr``'s shape is the training input, ``lr`` (the "HR father") its label;
2. starting from the meta-trained weights, ``num_steps`` plain-SGD steps on the L1 loss, step ``i`` with
   learning rate ``config.inner_lr(i)`` (every step goes through ``mzsr_tf.inner.inner_step``);
3. the result is the adapted network applied to the cubic upscale of ``lr`` to the output shape
   (the modcropped GT's shape, or ``ceil(s * shape)``), clipped to [0, 1]; optionally refined by
   back-projection.

All of it (son, steps, both forward passes) runs inside one ``tf.function`` whose input shapes are
unknown, so images of any size share one trace and no Python runs per step. Weights are never
modified: the steps produce new tensors from the starting weights, so every image starts afresh.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mzsr_tf import degradation, inner
from mzsr_tf.config import PRECISIONS, AdaptationConfig
from mzsr_tf.imresize import tf_imresize
from mzsr_tf.model import forward


@dataclasses.dataclass
class AdaptationResult:
    """What one meta-test produced.

    ``sr`` and ``initial_sr`` are float32 HWC in [0, 1] (the network's output after and before the
    adaptation, clipped); ``son_losses[i]`` is the L1 loss on the son before step ``i``;
    ``seconds`` is the wall time of the whole adaptation including both forward passes.
    """

    sr: np.ndarray
    initial_sr: np.ndarray
    son_losses: np.ndarray
    seconds: float


@dataclasses.dataclass
class MultiStepResult:
    """One adaptation run observed at several step counts (``MetaTester.adapt_at_steps``).

    ``srs[n]`` is the SR image (float32 HWC in [0, 1]) after ``n`` steps, equal to what ``adapt`` with
    ``num_steps=n`` returns; ``son_losses`` and ``seconds`` cover the whole run (``max(srs)`` steps).
    """

    srs: Dict[int, np.ndarray]
    son_losses: np.ndarray
    seconds: float


class MetaTester:
    """Adapts a network to single images; one instance serves any number of images and sizes.

    Args:
      params: the starting (meta-trained) weights, tensors or variables in ``PARAM_NAMES`` order,
        e.g. ``model.trainable_variables``. They are read, never written.
      config: scale, down-sampling method, number of steps and their learning rates, noise,
        back-projection, precision. May be replaced between images (``tester.config = ...``).
    """

    def __init__(self, params: Sequence[tf.Variable], config: AdaptationConfig):
        self.params = list(params)
        self.config = config
        image = tf.TensorSpec([None, None, None], tf.float32)
        shape = tf.TensorSpec([2], tf.int32)
        rates = tf.TensorSpec([None], tf.float32)
        record = tf.TensorSpec([None], tf.bool)
        seed = tf.TensorSpec([2], tf.int32)
        # autograph=False: the graph is plain TF ops (an explicit tf.while_loop), which keeps the
        # one-off tracing cost low (autograph would transpile every library function it calls).
        self._run_with_kernel = tf.function(
            self._run, autograph=False,
            input_signature=[image, tf.TensorSpec([None, None], tf.float32), shape, rates, record, seed])
        self._run_bicubic = tf.function(
            lambda lr, out_hw, rate_list, record_at, noise_seed: self._run(
                lr, None, out_hw, rate_list, record_at, noise_seed),
            autograph=False, input_signature=[image, shape, rates, record, seed])

    def _run(self, lr, kernel, out_hw, rates, record, noise_seed):
        """The graph: son, ``len(rates)`` steps, and the SR image after ``n`` steps wherever ``record[n]``.

        Returns ``(srs [count(record), H, W, C], son_losses [len(rates)])``.
        """
        cfg = self.config
        down_kernel = "cubic" if kernel is None else kernel
        son = degradation.tf_degrade(lr, down_kernel, cfg.scale, ds_method=cfg.ds_method,
                                     noise_std=cfg.noise_std, seed=noise_seed)
        son_ilr = tf_imresize(son, cfg.scale, output_shape=tf.shape(lr)[:2], kernel=cfg.upscale_method)[None]
        lr_ilr = tf_imresize(lr, cfg.scale, output_shape=out_hw, kernel=cfg.upscale_method)[None]
        net = functools.partial(forward, compute_dtype=tf.as_dtype(PRECISIONS[cfg.precision]))
        # float16 gradients of a mean L1 loss underflow without scaling; bfloat16 has float32's range
        loss_scale = 1024.0 if cfg.precision == "mixed_float16" else 1.0
        slots = tf.cumsum(tf.cast(record, tf.int32)) - 1  # where the SR after n steps goes

        def keep_sr(n, params, srs):
            return tf.cond(record[n],
                           lambda: srs.write(slots[n], tf.clip_by_value(net(params, lr_ilr)[0], 0.0, 1.0)),
                           lambda: srs)

        start = [tf.convert_to_tensor(p) for p in self.params]
        srs = keep_sr(0, start, tf.TensorArray(tf.float32, size=slots[-1] + 1))
        _, losses, srs = sgd_loop(net, start, son_ilr, lr[None], rates, loss_scale=loss_scale,
                                  state=srs, after_step=keep_sr)
        return srs.stack(), losses

    def _execute(self, lr, kernel, step_counts, output_shape, seed):
        """Run ``max(step_counts)`` steps; ``({n: SR after n steps}, son_losses, seconds)``."""
        cfg = self.config
        counts = sorted(set(int(n) for n in step_counts))
        if not counts or counts[0] < 0:
            raise ValueError(f"step_counts must be non-negative integers, got {list(step_counts)}")
        if output_shape is None:
            output_shape = tuple(int(np.ceil(n * cfg.scale)) for n in lr.shape[:2])
        record = np.zeros(counts[-1] + 1, bool)
        record[counts] = True
        start = time.perf_counter()
        args = (tf.constant(lr, tf.float32),)
        if kernel is not None:
            args += (tf.constant(kernel, tf.float32),)
        args += (tf.constant(output_shape, tf.int32), tf.constant(cfg.inner_lr.rates(counts[-1]), tf.float32),
                 tf.constant(record), tf.constant(seed, tf.int32))
        run = self._run_bicubic if kernel is None else self._run_with_kernel
        srs, losses = run(*args)
        srs = dict(zip(counts, srs.numpy()))
        return srs, losses.numpy(), time.perf_counter() - start

    def _back_project(self, sr, lr, kernel):
        cfg = self.config
        down_kernel = "cubic" if kernel is None else kernel
        for _ in range(cfg.back_projection_iters):
            sr = degradation.back_projection(sr, lr, down_kernel, cfg.upscale_method, cfg.scale, cfg.ds_method)
        return np.asarray(sr, np.float32)

    def adapt(self, lr: np.ndarray, kernel: Optional[np.ndarray] = None,
              output_shape: Optional[Tuple[int, int]] = None, seed: Tuple[int, int] = (0, 0)
              ) -> AdaptationResult:
        """Adapt to ``lr`` (float32 HWC in [0, 1]) blurred by ``kernel`` (2-D, or None for bicubic).

        ``output_shape`` is the SR image's ``(H, W)``; by default ``ceil(scale * lr.shape[:2])``.
        ``seed`` feeds the son's noise (used only when ``config.noise_std > 0``).
        """
        num_steps = self.config.num_steps
        srs, losses, seconds = self._execute(lr, kernel, (0, num_steps), output_shape, seed)
        sr = srs[num_steps]
        if self.config.back_projection:
            sr = self._back_project(sr, lr, kernel)
        return AdaptationResult(sr=sr, initial_sr=srs[0], son_losses=losses, seconds=seconds)

    def adapt_at_steps(self, lr: np.ndarray, kernel: Optional[np.ndarray], step_counts: Sequence[int],
                       output_shape: Optional[Tuple[int, int]] = None, seed: Tuple[int, int] = (0, 0)
                       ) -> MultiStepResult:
        """One run of ``max(step_counts)`` steps giving the SR image after each of ``step_counts``.

        ``srs[n]`` equals ``adapt`` with ``num_steps=n`` (the same ops: step ``i`` always uses
        ``config.inner_lr(i)``), at the cost of the longest run; ``config.num_steps`` is ignored.
        Other arguments as ``adapt``.
        """
        srs, losses, seconds = self._execute(lr, kernel, step_counts, output_shape, seed)
        if self.config.back_projection:
            srs = {n: self._back_project(sr, lr, kernel) for n, sr in srs.items()}
        return MultiStepResult(srs=srs, son_losses=losses, seconds=seconds)


def sgd_loop(net, params: Sequence[tf.Tensor], son_ilr: tf.Tensor, father: tf.Tensor, rates: tf.Tensor, *,
             loss_scale: float = 1.0, state: Any = (), after_step: Callable = None):
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
