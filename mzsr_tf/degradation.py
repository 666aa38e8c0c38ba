"""The one place that makes low-resolution images: ``LR = clip((HR * k)↓s + n, 0, 1)``.

``scale`` here is the super-resolution factor (2.0 for x2): the HR image is down-scaled by ``1/scale``
with the reference's :func:`~mzsr_tf.imresize.imresize` semantics:

* ``kernel`` a 2-D array: correlate with it (symmetric border), then ``'direct'`` subsampling of rows
  and columns ``round(linspace(0, H - 1/s', out))`` with ``s' = 1/scale``, or ``'bicubic'`` resizing;
* ``kernel='cubic'``: MATLAB bicubic down-scaling with antialiasing (the reference's fallback).

Gaussian noise of standard deviation ``noise_std`` is added and the result clipped to [0, 1], as the
reference's test-time son and meta-training tasks (it clips even without noise).

Precision: :func:`degrade` works in float64, which regenerates the reference's
``Input/g20/Set5/*.png`` from ``GT/Set5/*_GT.png`` bit-exactly after :func:`~mzsr_tf.metrics.to_uint8`
(image / 255, kernel from ``Input/g20/kernel.mat``, scale 2, direct, no kernel shift, no modcrop
needed: the GT sizes are even).  :func:`tf_degrade` works in float32 (float64 if given float64
images); in float32 one pixel of ``butterfly`` differs by one grey level after rounding.
"""
from __future__ import annotations

import numbers
from typing import Optional, Union

import numpy as np
import tensorflow as tf

from mzsr_tf.config import DS_METHODS
from mzsr_tf.imresize import imresize, tf_imresize

CUBIC = "cubic"


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale >= 1:
        raise ValueError(f"degrade: scale is the super-resolution factor and must be a number >= 1, "
                         f"got {scale!r}")
    return float(scale)


def _check_kernel_arg(kernel, ds_method):
    if isinstance(kernel, str):
        if kernel != CUBIC:
            raise ValueError(f"degrade: kernel must be a 2-D array or 'cubic', got {kernel!r}")
    if ds_method not in DS_METHODS:
        raise ValueError(f"degrade: ds_method must be 'direct' or 'bicubic', got {ds_method!r}")


def _check_noise(noise_std) -> float:
    if not (isinstance(noise_std, numbers.Real) and noise_std >= 0):
        raise ValueError(f"degrade: noise_std must be a number >= 0, got {noise_std!r}")
    return float(noise_std)


def degrade(hr: np.ndarray, kernel: Union[np.ndarray, str], scale: float, ds_method: str = "direct",
            noise_std: float = 0.0, rng: Optional[np.random.Generator] = None,
            kernel_shift_flag: bool = False) -> np.ndarray:
    """Low-resolution image from a high-resolution one, in float64.

    Args:
      hr: ``[H, W, C]`` (or ``[H, W]``) float image in [0, 1].
      kernel: 2-D blur kernel (float array summing to 1) or ``'cubic'`` (bicubic degradation).
      scale: super-resolution factor (>= 1); the output is ``ceil(H / scale) x ceil(W / scale)``.
      ds_method: ``'direct'`` or ``'bicubic'`` subsampling after the blur (numeric kernels).
      noise_std: standard deviation of additive Gaussian noise (needs ``rng`` when > 0).
      rng: ``np.random.Generator`` for the noise.
      kernel_shift_flag: shift the kernel first as the reference's ``kernel_shift``.

    Returns:
      float64 ``[ceil(H/scale), ceil(W/scale), C]`` in [0, 1].
    """
    scale = _check_scale(scale)
    _check_kernel_arg(kernel, ds_method)
    noise_std = _check_noise(noise_std)
    if noise_std > 0 and rng is None:
        raise ValueError("degrade: noise_std > 0 needs rng, a np.random.Generator")
    hr = np.asarray(hr, dtype=np.float64)
    lr = imresize(hr, scale=1.0 / scale, kernel=kernel, ds_method=ds_method,
                  kernel_shift_flag=kernel_shift_flag)
    if noise_std > 0:
        lr = lr + rng.standard_normal(lr.shape) * noise_std
    return np.clip(lr, 0.0, 1.0)


def tf_degrade(hr, kernel, scale: float, ds_method: str = "direct", noise_std: float = 0.0, seed=None):
    """TensorFlow :func:`degrade` for ``tf.data`` maps and ``tf.function`` steps.

    Args:
      hr: float ``[H, W, C]`` or ``[N, H, W, C]`` tensor in [0, 1]; H, W may be dynamic.
      kernel: ``[k, k]`` tensor/array (any float dtype, cast to the images' dtype) or ``'cubic'``.
      scale: super-resolution factor, a Python number >= 1 (or a float scalar tensor).
      ds_method: ``'direct'`` or ``'bicubic'``.
      noise_std: Gaussian noise standard deviation (number or scalar tensor).
      seed: shape ``[2]`` int tensor for ``tf.random.stateless_normal``; needed when noise_std is
        a tensor or > 0.

    Returns:
      Low-resolution images with ``hr``'s rank and dtype, computed in that dtype (float32 normally).
    """
    if isinstance(scale, numbers.Real):
        scale = _check_scale(scale)
        down = 1.0 / scale
    else:
        down = 1.0 / tf.cast(scale, tf.float64)
    _check_kernel_arg(kernel, ds_method)
    hr = tf.convert_to_tensor(hr)
    lr = tf_imresize(hr, down, kernel=kernel, ds_method=ds_method)
    if isinstance(noise_std, numbers.Real):
        noise_std = _check_noise(noise_std)
        if noise_std == 0:
            return tf.clip_by_value(lr, 0.0, 1.0)
    if seed is None:
        raise ValueError("tf_degrade: noise needs seed, a shape [2] integer tensor")
    noise = tf.random.stateless_normal(tf.shape(lr), seed=seed, dtype=lr.dtype)
    return tf.clip_by_value(lr + noise * tf.cast(noise_std, lr.dtype), 0.0, 1.0)


def back_projection(sr: np.ndarray, lr: np.ndarray, down_kernel, up_kernel, scale: float,
                    ds_method: str = "direct") -> np.ndarray:
    """One iterative back-projection step, as the reference's ``utils.back_projection``.

    ``sr + imresize(lr - imresize(sr, 1/scale, lr.shape, down_kernel, ds_method), scale, sr.shape,
    up_kernel)``, clipped to [0, 1].  ``down_kernel`` is a 2-D kernel or ``'cubic'``; ``up_kernel`` a
    named kernel (the reference uses ``'cubic'``).  Unlike the reference, ``sr`` is not modified in place.
    Computed in float64 (float32 if both images are float32); returns an array shaped like ``sr``.
    """
    scale = _check_scale(scale)
    sr = np.asarray(sr)
    lr = np.asarray(lr)
    dtype = np.float32 if sr.dtype == np.float32 and lr.dtype == np.float32 else np.float64
    sr = sr.astype(dtype, copy=False)
    lr = lr.astype(dtype, copy=False)
    simulated = imresize(sr, scale=1.0 / scale, output_shape=lr.shape, kernel=down_kernel,
                         ds_method=ds_method)
    correction = imresize(lr - simulated, scale=scale, output_shape=sr.shape, kernel=up_kernel)
    return np.clip(sr + correction, 0.0, 1.0)


def tf_back_projection(sr, lr, down_kernel, up_kernel: str, scale: float, ds_method: str = "direct"):
    """TensorFlow :func:`back_projection`: ``sr`` and ``lr`` float ``[H, W, C]`` or ``[N, H, W, C]``.

    Public API for graph code (batched, on GPU, differentiable); the meta-test itself uses the numpy
    :func:`back_projection`, the reference's exact arithmetic.
    """
    scale = _check_scale(scale)
    sr = tf.convert_to_tensor(sr)
    lr = tf.convert_to_tensor(lr)
    lr_size = tf.shape(lr)[-3:-1]
    sr_size = tf.shape(sr)[-3:-1]
    simulated = tf_imresize(sr, 1.0 / scale, output_shape=lr_size, kernel=down_kernel,
                            ds_method=ds_method)
    correction = tf_imresize(lr - simulated, scale, output_shape=sr_size, kernel=up_kernel)
    return tf.clip_by_value(sr + correction, 0.0, 1.0)
