"""MATLAB-style image resizing with the semantics of the reference's ``imresize``.

The reference (github ``JWSoh/MZSR``, ``imresize.py``, itself from ZSSR/KernelGAN) resizes an image by
one of two routes:

* a *named* kernel (``'cubic'``, ``'lanczos2'``, ``'lanczos3'``, ``'linear'``; ``None`` means cubic):
  separable resampling along H then W, with MATLAB's coordinate mapping, the kernel widened by
  ``1/scale`` when down-scaling with ``antialiasing``, and a symmetric (half-sample) border;
* a *numeric* kernel (a 2-D array; down-scaling only, ``scale <= 1``): correlation with the kernel
  (symmetric border, as ``scipy.ndimage.correlate``), then either ``'direct'`` subsampling of the rows
  and columns ``round(linspace(0, H - 1/scale, out_H))`` or ``'bicubic'`` resizing of the blurred image.

Here both routes are written once, in TensorFlow.  A named kernel becomes one *resampling plan* per
axis (for every output position the input indices and weights of the few kernel taps, border folded
in), applied as a batch of small dense matmuls: blocks of 32 output rows times the input window they
read.  A numeric kernel is a depthwise convolution (strided when the kept pixels are every
``1/scale``-th) or, for other kept pixels, the correlation computed at those pixels only (gathered
kernel windows contracted by block matmuls).  The same code serves the numpy function
:func:`imresize` (run through a cached ``tf.function``), ``tf.data`` maps and ``tf.function``
training/adaptation steps (:func:`tf_imresize`), with dynamic image sizes and gradients with
respect to the images.

Precision: :func:`imresize` computes in float64 for float64 (and integer) input and in float32 for
float32 input, and returns that dtype.  The reference computes the named-kernel route in float64
whatever the input and returns float64, and the numeric route in the input's dtype; for float32 input
the two agree to about 1e-6.  Resampling weights are always computed in float64.
:func:`tf_imresize` computes in the images' dtype (float16/bfloat16 are computed in float32 and cast
back).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from mzsr_tf.config import DS_METHODS


_FLOAT32_EPS = float(np.finfo(np.float32).eps)


# --------------------------------------------------------------------------------------------------
# Interpolation kernels: x is the distance from the output position, in input pixels.
# They accept float tensors or arrays and return a tensor of the same float dtype.

def cubic(x):
    """Keys' cubic convolution kernel (a = -0.5) as MATLAB's ``imresize``: 1 at 0, 0 at +-1 and +-2."""
    x = tf.convert_to_tensor(x)
    absx = tf.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * tf.cast(absx <= 1.0, x.dtype)
    outer = ((-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0)
             * tf.cast((absx > 1.0) & (absx <= 2.0), x.dtype))
    return inner + outer


def _lanczos(x, lobes: float):
    x = tf.convert_to_tensor(x)
    numerator = tf.sin(math.pi * x) * tf.sin(math.pi * x / lobes) + _FLOAT32_EPS
    denominator = math.pi ** 2 * x * x / lobes + _FLOAT32_EPS
    return numerator / denominator * tf.cast(tf.abs(x) < lobes, x.dtype)


def lanczos2(x):
    """Lanczos kernel with 2 lobes (the reference adds float32 eps to numerator and denominator)."""
    return _lanczos(x, 2.0)


def lanczos3(x):
    """Lanczos kernel with 3 lobes (the reference adds float32 eps to numerator and denominator)."""
    return _lanczos(x, 3.0)


def linear(x):
    """Triangle (bilinear) kernel: 1 at 0, 0 at +-1."""
    x = tf.convert_to_tensor(x)
    rising = (x + 1.0) * tf.cast((x >= -1.0) & (x < 0.0), x.dtype)
    falling = (1.0 - x) * tf.cast((x >= 0.0) & (x <= 1.0), x.dtype)
    return rising + falling


#: name -> (kernel function, support width in input pixels)
KERNELS: Dict[str, Tuple[Callable, float]] = {
    "cubic": (cubic, 4.0),
    "lanczos2": (lanczos2, 4.0),
    "lanczos3": (lanczos3, 6.0),
    "linear": (linear, 2.0),
}


# --------------------------------------------------------------------------------------------------
# Scale and output size, as the reference's fix_scale_and_size.

def fix_scale_and_size(input_shape: Sequence[int], output_shape=None, scale=None
                       ) -> Tuple[float, Tuple[int, int]]:
    """The scale used for the weights and the output ``(height, width)``, as the reference derives them.

    * ``scale`` may be a number or a sequence ``[scale_h, scale_w, ...]``; only ``scale_h`` is used for
      the weights of *both* axes (as the reference), ``scale_w`` only for the output width.
    * ``output_shape`` (``[h, w, ...]``) wins over ``scale`` for the output size; when both are given
      the weights still use ``scale`` (the reference's behaviour, used by its test-time resizes).
    * ``scale`` missing: ``output_shape[0] / input_shape[0]`` (for both axes, as the reference).
    * ``output_shape`` missing: ``ceil(input_shape * scale)`` per axis, computed in float64.
    """
    if scale is None and output_shape is None:
        raise ValueError("imresize needs scale or output_shape, got neither")
    scales = None
    if scale is not None:
        scales = [scale, scale] if np.isscalar(scale) else list(scale)
        if not scales:
            raise ValueError(f"imresize: scale {scale!r} does not fit an image of shape {tuple(input_shape)}")
        scales = scales + [1.0] * (2 - len(scales))
        for value in scales[:2]:
            if not isinstance(value, numbers.Real) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"imresize: scale must be positive and finite, got {scale!r}")
    if output_shape is not None:
        sizes = list(output_shape)
        if len(sizes) < 2:
            raise ValueError(f"imresize: output_shape needs at least (height, width), got {output_shape!r}")
        for value in sizes[:2]:
            if not isinstance(value, numbers.Integral) and not (
                    isinstance(value, numbers.Real) and float(value).is_integer()):
                raise ValueError(f"imresize: output_shape must hold whole numbers, got {output_shape!r}")
            if int(value) < 1:
                raise ValueError(f"imresize: output_shape must be positive, got {output_shape!r}")
        out_hw = (int(sizes[0]), int(sizes[1]))
    else:
        out_hw = tuple(int(v) for v in np.ceil(np.asarray(input_shape[:2], np.float64)
                                               * np.asarray(scales[:2], np.float64)))
    if scales is None:
        weight_scale = float(out_hw[0]) / float(input_shape[0])
    else:
        weight_scale = float(scales[0])
    return weight_scale, out_hw


# --------------------------------------------------------------------------------------------------
# Resampling plans: per output position, input indices (border folded in) and weights.

def symmetric_fold(index, length):
    """Map any integer index onto ``[0, length)`` by half-sample symmetric reflection.

    ``-1 -> 0, -2 -> 1, length -> length - 1``; periodic with period ``2 * length`` beyond that.  This
    is the reference's symmetric border copy and ``scipy.ndimage``'s ``'reflect'`` mode.
    """
    index = tf.convert_to_tensor(index)
    length = tf.cast(length, index.dtype)
    period = 2 * length
    folded = tf.math.floormod(index, period)
    return tf.where(folded >= length, period - 1 - folded, folded)


def _is_static_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _float64(value):
    """A float64 tensor; Python numbers are converted directly (``tf.cast`` would go through float32)."""
    if _is_static_number(value):
        return tf.constant(float(value), tf.float64)
    return tf.cast(value, tf.float64)


def resampling_plan(in_length, out_length, scale, kernel: str = "cubic", antialiasing: bool = True,
                    fold_border: bool = True):
    """Weights and input indices that resample one axis, as the reference's ``calculate_weights_indices``.

    Args:
      in_length, out_length: axis lengths (Python ints or int32 scalar tensors).
      scale: the weight scale (a Python number, or a float scalar tensor for a run-time scale).
      kernel: a name in :data:`KERNELS`.
      antialiasing: widen the kernel by ``1/scale`` when ``scale < 1``.

    Returns:
      ``(weights, indices)``: float64 ``[out_length, taps]`` weights whose rows sum to 1 and int32
      ``[out_length, taps]`` 0-based indices into the input axis (with ``fold_border=False``: before
      the symmetric border is folded in, so they may be negative or ``>= in_length``).  ``taps = ceil(width)`` (``width``
      the kernel support, widened for antialiasing); the reference computes ``taps + 2`` columns and
      drops the first and last, which are always zero.  ``taps`` is static when ``scale`` is a number.
    """
    if kernel not in KERNELS:
        raise ValueError(f"imresize: unknown kernel {kernel!r}; expected one of {sorted(KERNELS)} "
                         f"or a 2-D numeric array")
    kernel_fn, support = KERNELS[kernel]
    if _is_static_number(scale):
        scale = float(scale)
        widen = bool(antialiasing) and scale < 1
        width = support / scale if widen else support
        taps = math.ceil(width)
        shift = 0.5 * (1 - 1 / scale)
    else:
        scale = _float64(scale)
        widen = tf.logical_and(bool(antialiasing), scale < 1)
        width = tf.where(widen, support / scale, tf.constant(support, tf.float64))
        taps = tf.cast(tf.math.ceil(width), tf.int32)
        shift = 0.5 * (1 - 1 / scale)
    out_length = tf.cast(out_length, tf.int32)
    # 1-based output coordinates mapped to 1-based input coordinates (MATLAB convention).
    x = tf.cast(tf.range(1, out_length + 1), tf.float64)
    u = x / scale + shift
    left = tf.floor(u - width / 2)
    offsets = tf.cast(tf.range(1, taps + 1), tf.float64)
    indices = left[:, None] + offsets[None, :]
    distance = u[:, None] - indices
    if isinstance(widen, bool):
        weights = scale * kernel_fn(distance * scale) if widen else kernel_fn(distance)
    else:
        weights = tf.where(widen, scale * kernel_fn(distance * scale), kernel_fn(distance))
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    indices = tf.cast(indices, tf.int32) - 1
    if fold_border:
        indices = symmetric_fold(indices, in_length)
    return weights, indices


def subsample_positions(in_length, out_length, scale):
    """Rows (or columns) kept by ``'direct'`` subsampling: ``round(linspace(0, L - 1/scale, out_length))``.

    Computed in float64 exactly as ``numpy.linspace`` does (``i * step``, last = stop), rounded half to
    even as ``numpy.round``; negative positions (images smaller than ``1/scale``) wrap around as numpy
    indexing does in the reference.  Returns int32 ``[out_length]``.
    """
    in_length = tf.cast(in_length, tf.int32)
    out_length = tf.cast(out_length, tf.int32)
    stop = tf.cast(in_length, tf.float64) - 1.0 / _float64(scale)
    divisions = tf.cast(tf.maximum(out_length - 1, 1), tf.float64)
    steps = tf.cast(tf.range(out_length), tf.float64)
    positions = steps * (stop / divisions)
    positions = tf.where(tf.logical_and(steps > 0, steps == tf.cast(out_length - 1, tf.float64)),
                         stop, positions)
    positions = tf.cast(tf.round(positions), tf.int32)
    return tf.where(positions < 0, positions + in_length, positions)


# --------------------------------------------------------------------------------------------------
# Applying plans and kernels to [N, H, W, C] tensors.

_BLOCK_ROWS = 32  # output rows per dense block of a banded resampling matrix
_MAX_GATHERED_VALUES = 2 ** 26  # kernel windows gathered by _correlate_at at most (256 MB in float32)


def _block_windows(indices, in_length):
    """Group per-output tap indices into blocks of ``_BLOCK_ROWS`` consecutive outputs and their windows.

    ``indices``: int32 ``[out, taps]``, unfolded (may be negative or ``>= in_length``).  Block ``b``
    reads the input window ``start_b .. start_b + window - 1`` (``window`` the widest block's span).
    Returns ``offsets`` [blocks, _BLOCK_ROWS, taps] (tap positions inside the block's window; the last
    block is padded by repeating the last output) and ``window_positions`` [blocks, window], the
    window's input positions with the symmetric border folded in.
    """
    out_length = tf.shape(indices)[0]
    blocks = (out_length + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    padded_rows = tf.minimum(tf.range(blocks * _BLOCK_ROWS), out_length - 1)
    indices = tf.reshape(tf.gather(indices, padded_rows), [blocks, _BLOCK_ROWS, -1])
    start = tf.reduce_min(indices, axis=[1, 2])
    window = tf.reduce_max(tf.reduce_max(indices, axis=[1, 2]) - start) + 1
    offsets = indices - start[:, None, None]
    window_positions = symmetric_fold(start[:, None] + tf.range(window)[None, :], in_length)
    return offsets, window_positions


def _banded_blocks(weights, indices, in_length):
    """Cut a banded resampling matrix into dense blocks of ``_BLOCK_ROWS`` consecutive output rows.

    ``weights``/``indices``: a plan with unfolded indices (``fold_border=False``).  Returns
    ``matrices`` [blocks, _BLOCK_ROWS, window] (zero rows pad the last block) and ``window_rows``
    [blocks, window] (see :func:`_block_windows`).
    """
    offsets, window_rows = _block_windows(indices, in_length)
    blocks, window = tf.shape(offsets)[0], tf.shape(window_rows)[1]
    weights = tf.concat([weights, tf.zeros([blocks * _BLOCK_ROWS - tf.shape(weights)[0],
                                            tf.shape(weights)[1]], weights.dtype)], axis=0)
    weights = tf.reshape(weights, [blocks, _BLOCK_ROWS, -1])
    # Taps that fold onto the same input pixel stay separate columns: the matmul adds them up.
    matrices = tf.reduce_sum(tf.one_hot(offsets, window, dtype=weights.dtype) * weights[..., None], axis=2)
    return matrices, window_rows


def _resample_rows(images, weights, indices):
    """Resample axis 1 of ``images`` [N, L, M, C] with an unfolded plan; returns [N, out, M, C].

    Computed as a batch of small dense matmuls (one per block of output rows) on gathered input
    windows: no Python loop over rows or taps, one pass over the output.
    """
    shape = tf.shape(images)
    in_length = shape[1]
    flat = tf.reshape(images, [shape[0], in_length, shape[2] * shape[3]])
    matrices, window_rows = _banded_blocks(tf.cast(weights, images.dtype), indices, in_length)
    windows = tf.gather(flat, window_rows, axis=1)  # [N, blocks, window, M*C]
    resized = tf.matmul(matrices, windows)  # [N, blocks, _BLOCK_ROWS, M*C]
    resized = tf.reshape(resized, [shape[0], -1, shape[2], shape[3]])
    return resized[:, :tf.shape(weights)[0]]


def _swap_hw(images):
    return tf.transpose(images, [0, 2, 1, 3])


def _resize_named(images, out_h, out_w, scale, kernel, antialiasing):
    """Separable resize of [N, H, W, C] with a named kernel (no caching, no dtype handling)."""
    in_h, in_w = tf.shape(images)[1], tf.shape(images)[2]
    weights_h, indices_h = resampling_plan(in_h, out_h, scale, kernel, antialiasing, fold_border=False)
    weights_w, indices_w = resampling_plan(in_w, out_w, scale, kernel, antialiasing, fold_border=False)
    if _is_static_number(scale) and scale > 1:
        # Up-scaling: resample W first so the transposes move the smaller tensors.
        resized = _swap_hw(_resample_rows(_swap_hw(images), weights_w, indices_w))
        return _resample_rows(resized, weights_h, indices_h)
    resized = _swap_hw(_resample_rows(images, weights_h, indices_h))
    return _swap_hw(_resample_rows(resized, weights_w, indices_w))


def _kernel_offsets(size):
    """Offsets -size//2 .. size - 1 - size//2 of a kernel's taps from its centre (index ``size // 2``,
    as ``scipy.ndimage.correlate``)."""
    return tf.range(size) - size // 2


def _correlate(images, kernel, stride: int = 1):
    """Correlation of every channel of [N, H, W, C] with a [kh, kw] kernel, symmetric border.

    Output position (i, j) is centred on input pixel (stride*i, stride*j), with the kernel's centre at
    index ``k // 2`` as ``scipy.ndimage.correlate``.  Returns [N, ceil(H/stride), ceil(W/stride), C].
    A depthwise convolution (the kernel repeated per channel) of the symmetrically padded images.
    """
    in_h, in_w, channels = tf.shape(images)[1], tf.shape(images)[2], tf.shape(images)[3]
    k_h, k_w = tf.shape(kernel)[0], tf.shape(kernel)[1]
    rows = symmetric_fold(tf.range(-(k_h // 2), in_h + (k_h - 1 - k_h // 2)), in_h)
    cols = symmetric_fold(tf.range(-(k_w // 2), in_w + (k_w - 1 - k_w // 2)), in_w)
    padded = tf.gather(tf.gather(images, rows, axis=1), cols, axis=2)
    filters = tf.tile(kernel[:, :, None, None], tf.stack([1, 1, channels, 1]))
    return tf.nn.depthwise_conv2d(padded, filters, [1, stride, stride, 1], padding="VALID")


def _correlate_at(images, kernel, rows, cols):
    """The correlation of :func:`_correlate` evaluated only at pixels (rows[i], cols[j]).

    ``images`` [N, H, W, C], ``kernel`` [kh, kw], ``rows``/``cols`` int32 [out_h]/[out_w] positions
    in ``[0, H)``/``[0, W)``.  Returns [N, out_h, out_w, C].

    Only the kept pixels are computed (about ``1/scale**2`` of a full-resolution blur): for every
    block of ``_BLOCK_ROWS`` kept columns, the input window those columns read is gathered on the
    ``kh`` rows around every kept row, and one matmul per block contracts it with a [_BLOCK_ROWS,
    kh * window] matrix holding the kernel at each column's offset.  Memory: about ``kh * (step +
    kw / _BLOCK_ROWS)`` values per output value (``step`` the spacing of the kept columns).
    """
    batch, in_h, in_w, channels = tf.unstack(tf.shape(images))
    k_h, k_w = tf.shape(kernel)[0], tf.shape(kernel)[1]
    out_h, out_w = tf.shape(rows)[0], tf.shape(cols)[0]
    # Input rows [kh, out_h] and unfolded input columns [out_w, kw] read by the kernel (no int32
    # transposes: oneDNN logs an error for those on CPUs without AVX-512).
    row_taps = symmetric_fold(_kernel_offsets(k_h)[:, None] + rows[None, :], in_h)
    offsets, window_cols = _block_windows(cols[:, None] + _kernel_offsets(k_w)[None, :], in_w)
    blocks, window = tf.shape(offsets)[0], tf.shape(window_cols)[1]
    # matrices[b, j, a, t]: weight of window column t, kernel row a, for output column j of block b.
    matrices = tf.einsum("av,bjvt->bjat", kernel, tf.one_hot(offsets, window, dtype=images.dtype))
    matrices = tf.reshape(matrices, [blocks, _BLOCK_ROWS, k_h * window])
    # One gather of [N*C] pixel vectors: windows[b, a, t, i] = pixel (row_taps[a, i], window_cols[b, t]).
    pixels = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [in_h * in_w, batch * channels])
    flat_index = row_taps[None, :, None, :] * in_w + window_cols[:, None, :, None]
    windows = tf.reshape(tf.gather(pixels, flat_index), [blocks, k_h * window, out_h * batch * channels])
    filtered = tf.matmul(matrices, windows)  # [blocks, _BLOCK_ROWS, out_h * N * C]
    filtered = tf.reshape(filtered, [blocks * _BLOCK_ROWS, out_h, batch, channels])[:out_w]
    return tf.transpose(filtered, [2, 1, 0, 3])


def _resize_numeric(images, kernel, out_h, out_w, scale, ds_method):
    """Blur [N, H, W, C] with a numeric kernel, then subsample ('direct') or cubic-resize ('bicubic')."""
    kernel = tf.cast(kernel, images.dtype)
    if ds_method == "bicubic":
        blurred = _correlate(images, kernel)
        return _resize_named(blurred, out_h, out_w, scale, "cubic", True)
    in_h, in_w = tf.shape(images)[1], tf.shape(images)[2]
    rows = subsample_positions(in_h, out_h, scale)
    cols = subsample_positions(in_w, out_w, scale)

    def blur_every_pixel_then_keep():
        blurred = _correlate(images, kernel)
        return tf.gather(tf.gather(blurred, rows, axis=1), cols, axis=2)

    def blur_at_kept_pixels():
        # The gathered windows hold about out_h * N * C * kh * (W + blocks * kw) values; beyond a
        # budget (large images) blurring every pixel needs far less memory.
        shape = tf.shape(images)
        k_h, k_w = tf.shape(kernel)[0], tf.shape(kernel)[1]
        blocks = (out_w + _BLOCK_ROWS - 1) // _BLOCK_ROWS
        gathered = (tf.cast(out_h * shape[0] * shape[3] * k_h, tf.int64)
                    * tf.cast(in_w + blocks * k_w, tf.int64))
        return tf.cond(gathered <= _MAX_GATHERED_VALUES,
                       lambda: _correlate_at(images, kernel, rows, cols), blur_every_pixel_then_keep)

    if not _is_static_number(scale):
        return blur_at_kept_pixels()
    stride = int(round(1.0 / scale))
    if stride <= 1:
        # Nearly every pixel is kept.
        return blur_every_pixel_then_keep()

    def strided_blur():
        # Only the kept positions are computed: stride*i for i < out.
        return _correlate(images, kernel, stride)[:, :out_h, :out_w, :]

    # The common case (size divisible by 1/scale) keeps every stride-th pixel from 0: a strided
    # convolution, the fastest on whole images (on small patches the kept-pixel route is a little
    # faster still, about 1.1 vs 2 ms for 16 patches of 64x64x3, but both are cheap).
    regular = tf.logical_and(
        tf.reduce_all(tf.equal(rows, stride * tf.range(out_h))),
        tf.reduce_all(tf.equal(cols, stride * tf.range(out_w))))
    regular = tf.logical_and(regular, tf.logical_and(stride * (out_h - 1) < in_h,
                                                     stride * (out_w - 1) < in_w))
    return tf.cond(regular, strided_blur, blur_at_kept_pixels)


@tf.function(reduce_retracing=True)
def _resize_named_graph(images, out_h, out_w, scale, kernel, antialiasing):
    return _resize_named(images, out_h, out_w, scale, kernel, antialiasing)


@tf.function(reduce_retracing=True)
def _resize_numeric_graph(images, kernel, out_h, out_w, scale, ds_method):
    return _resize_numeric(images, kernel, out_h, out_w, scale, ds_method)


# --------------------------------------------------------------------------------------------------
# Public entry points.

def _check_ds_method(ds_method):
    if ds_method not in DS_METHODS:
        raise ValueError(f"imresize: ds_method must be 'direct' or 'bicubic', got {ds_method!r}")


def _is_numeric_kernel(kernel) -> bool:
    return kernel is not None and not isinstance(kernel, str)


def kernel_shift(kernel: np.ndarray, scale: float) -> np.ndarray:
    """Shift a numeric kernel's centre of mass as the reference's ``kernel_shift`` (from KernelGAN).

    The wanted centre is ``shape / 2 + 0.5 * (scale - shape[0] % 2)``; the reference passes the
    down-scaling factor (``scale <= 1``, e.g. 0.5), and so does :func:`imresize`.  The kernel is padded
    by ``ceil(max shift) + 1`` zeros on every side (at least 0; the reference fails on a negative pad)
    and shifted by cubic-spline interpolation (``scipy.ndimage.shift``, order 3, zero border).
    Returns a float64 array, larger than the input.
    """
    from scipy import ndimage  # kernel preparation only

    kernel = np.asarray(kernel, np.float64)
    current = np.asarray(ndimage.center_of_mass(kernel))
    wanted = np.asarray(kernel.shape) / 2 + 0.5 * (scale - (kernel.shape[0] % 2))
    shift = wanted - current
    pad = max(int(np.ceil(np.max(shift))) + 1, 0)
    return ndimage.shift(np.pad(kernel, pad, mode="constant"), shift)


def _as_numeric_kernel(kernel, where: str) -> np.ndarray:
    array = np.asarray(kernel)
    if array.ndim != 2 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{where}: a numeric kernel must be a non-empty 2-D array, got shape "
                         f"{array.shape} and dtype {array.dtype}")
    return array


def imresize(img: np.ndarray, scale=None, output_shape=None, kernel=None, antialiasing: bool = True,
             kernel_shift_flag: bool = False, ds_method: str = "direct") -> np.ndarray:
    """Resize a numpy image as the reference's ``imresize``.

    Args:
      img: ``[H, W, C]`` (or ``[H, W]``) array, float (values are not assumed to lie in [0, 1]).
      scale: a number or ``[scale_h, scale_w]``; see :func:`fix_scale_and_size`.
      output_shape: ``(height, width[, channels])``; see :func:`fix_scale_and_size`.
      kernel: ``None``/``'cubic'``, ``'lanczos2'``, ``'lanczos3'``, ``'linear'``, or a 2-D numeric
        kernel (down-scaling only: ``scale <= 1``).
      antialiasing: widen named kernels by ``1/scale`` when down-scaling.
      kernel_shift_flag: numeric kernels only, shift the kernel first (:func:`kernel_shift`).
      ds_method: numeric kernels only, ``'direct'`` subsampling or ``'bicubic'`` resizing after the blur.

    Returns:
      The resized image, ``[out_h, out_w, C]`` (``[out_h, out_w]`` for 2-D input); float32 for float32
      input (computed in float32), float64 otherwise (computed in float64).

    Unlike the reference, any number of channels is resized (the reference resizes exactly three), a
    2-D image is accepted, and borders wider than the image reflect again instead of failing.
    """
    array = np.asarray(img)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"imresize: expected an [H, W, C] or [H, W] image, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"imresize: expected a numeric image, got dtype {array.dtype}")
    _check_ds_method(ds_method)
    dtype = np.float32 if array.dtype == np.float32 else np.float64
    weight_scale, (out_h, out_w) = fix_scale_and_size(array.shape, output_shape, scale)
    images = tf.constant(array.astype(dtype, copy=False).reshape(1, *array.shape[:2], -1))
    if _is_numeric_kernel(kernel):
        numeric = _as_numeric_kernel(kernel, "imresize")
        if weight_scale > 1:
            raise ValueError(f"imresize: a numeric kernel only down-scales (scale <= 1), got scale "
                             f"{weight_scale}")
        if kernel_shift_flag:
            numeric = kernel_shift(numeric, weight_scale)
        resized = _resize_numeric_graph(images, tf.constant(numeric, dtype), tf.constant(out_h),
                                        tf.constant(out_w), weight_scale, ds_method)
    else:
        name = "cubic" if kernel is None else kernel
        if name not in KERNELS:
            raise ValueError(f"imresize: unknown kernel {kernel!r}; expected one of {sorted(KERNELS)} "
                             f"or a 2-D numeric array")
        resized = _resize_named_graph(images, tf.constant(out_h), tf.constant(out_w), weight_scale,
                                      name, bool(antialiasing))
    resized = resized.numpy()[0]
    return resized[:, :, 0] if array.ndim == 2 else resized


def _output_size(output_shape, in_h, in_w, scale):
    """(out_h, out_w) as int32 scalar tensors from an output_shape or ceil(in * scale)."""
    if output_shape is None:
        scale64 = _float64(scale)
        out_h = tf.cast(tf.math.ceil(tf.cast(in_h, tf.float64) * scale64), tf.int32)
        out_w = tf.cast(tf.math.ceil(tf.cast(in_w, tf.float64) * scale64), tf.int32)
        return out_h, out_w
    if isinstance(output_shape, (list, tuple)):
        if len(output_shape) < 2:
            raise ValueError(f"tf_imresize: output_shape needs (height, width), got {output_shape!r}")
        return tf.cast(output_shape[0], tf.int32), tf.cast(output_shape[1], tf.int32)
    sizes = tf.convert_to_tensor(output_shape)
    if sizes.shape.rank != 1:
        raise ValueError(f"tf_imresize: output_shape must be a pair or a 1-D tensor, got {output_shape!r}")
    return tf.cast(sizes[0], tf.int32), tf.cast(sizes[1], tf.int32)


def tf_imresize(images, scale, output_shape=None, kernel="cubic", antialiasing: bool = True,
                ds_method: str = "direct"):
    """Resize images inside TensorFlow with the same numbers as :func:`imresize`.

    Args:
      images: float ``[H, W, C]`` or ``[N, H, W, C]`` tensor; H, W may be unknown until run time.
      scale: the weight scale.  A Python number gives a static number of taps (fastest); a float
        scalar tensor is accepted too (the number of taps is then computed at run time).  ``None`` is
        allowed with ``output_shape``: ``out_h / H`` as the reference.
      output_shape: ``None`` (``ceil(size * scale)``), or ``(height, width[, ...])`` of Python ints or
        int32 scalar tensors, or a 1-D int tensor.  The weights still use ``scale`` (reference rule).
      kernel: ``'cubic'``, ``'lanczos2'``, ``'lanczos3'``, ``'linear'`` or a ``[k, k]`` numeric kernel
        (tensor or array; down-scaling only).
      antialiasing: widen named kernels by ``1/scale`` when down-scaling.
      ds_method: numeric kernels only: ``'direct'`` or ``'bicubic'``.

    Returns:
      Resized images with the input's rank and dtype.  Differentiable with respect to ``images``
      (and a numeric ``kernel``).  Computed in the images' dtype; float16/bfloat16 in float32.
    """
    images = tf.convert_to_tensor(images)
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(f"tf_imresize: expected [H, W, C] or [N, H, W, C] images, got shape {images.shape}")
    if not images.dtype.is_floating:
        raise ValueError(f"tf_imresize: expected float images, got {images.dtype.name}")
    _check_ds_method(ds_method)
    input_dtype = images.dtype
    if input_dtype in (tf.float16, tf.bfloat16):
        images = tf.cast(images, tf.float32)
    batched = images if rank == 4 else images[None]
    in_h, in_w = tf.shape(batched)[1], tf.shape(batched)[2]
    if scale is None:
        if output_shape is None:
            raise ValueError("tf_imresize needs scale or output_shape, got neither")
        out_h, out_w = _output_size(output_shape, in_h, in_w, None)
        scale = tf.cast(out_h, tf.float64) / tf.cast(in_h, tf.float64)
    else:
        if _is_static_number(scale) and not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"tf_imresize: scale must be positive and finite, got {scale!r}")
        out_h, out_w = _output_size(output_shape, in_h, in_w, scale)
    if _is_numeric_kernel(kernel):
        kernel = tf.convert_to_tensor(kernel)
        if kernel.shape.rank != 2:
            raise ValueError(f"tf_imresize: a numeric kernel must be 2-D, got shape {kernel.shape}")
        if _is_static_number(scale) and scale > 1:
            raise ValueError(f"tf_imresize: a numeric kernel only down-scales (scale <= 1), got scale {scale}")
        resized = _resize_numeric_graph(batched, kernel, out_h, out_w, scale, ds_method)
    else:
        if kernel not in KERNELS:
            raise ValueError(f"tf_imresize: unknown kernel {kernel!r}; expected one of {sorted(KERNELS)} "
                             f"or a 2-D numeric kernel")
        resized = _resize_named_graph(batched, out_h, out_w, scale, kernel, bool(antialiasing))
    resized.set_shape([batched.shape[0], *_static_output_size(batched.shape, scale, output_shape),
                       batched.shape[3]])
    if rank == 3:
        resized = resized[0]
    return tf.cast(resized, input_dtype)


def _static_output_size(input_shape, scale, output_shape):
    """(out_h, out_w) as Python ints where they are known before run time, else None."""
    if output_shape is not None:
        if isinstance(output_shape, (list, tuple)):
            return tuple(int(v) if isinstance(v, numbers.Integral) else None for v in output_shape[:2])
        return (None, None)
    if not _is_static_number(scale):
        return (None, None)
    return tuple(None if size is None else int(math.ceil(np.float64(size) * np.float64(scale)))
                 for size in input_shape[1:3])
