"""Blind blur-kernel estimation from one low-resolution image: KernelGAN, in TensorFlow 2.

KernelGAN (Bell-Kligler, Shocher and Irani, NeurIPS 2019, "Blind Super-Resolution Kernel Estimation
using an Internal-GAN"; authors' code github ``sefibk/KernelGAN``) learns the image-specific
down-scaling kernel of an image from that image alone.  A deep *linear* generator ``G`` (convolutions
without biases or nonlinearities, kernel sizes 7, 5, 3, 1, 1, 1, the last with stride 2) down-scales
random crops of the input; a fully convolutional patch discriminator ``D`` (a 7x7 convolution, then
1x1 convolutions with batch norm and ReLU, spectral norm on every convolution, a sigmoid) learns to
tell real crops of the input from ``G``'s outputs.  When ``D`` can no longer tell them apart, ``G``
down-scales the image the way the image was down-scaled, so its collapsed linear map (a delta pushed
through all layers: :func:`collapsed_kernel`) is the blur kernel.  The kernel is regularised
(:func:`sum_to_one_loss`, :func:`boundaries_loss`, :func:`sparsity_loss`, :func:`centre_of_mass_loss`)
and, in the first iterations, ``G`` is held close to bicubic down-scaling (:func:`bicubic_loss`).
Crops are drawn with probability weighted by the image's gradient magnitude (:func:`crop_probabilities`).
At x4 the x2 kernel is estimated and composed analytically with itself (:func:`compose_x4_kernel`:
``k4 = k2 * (k2 upsampled by 2)``), as the authors' code does.

Conventions of this project (see :mod:`mzsr_tf.kernels`, :mod:`mzsr_tf.degradation`):

* images are float32 ``[H, W, 3]`` (or ``[H, W]`` / ``[H, W, 1]``) in [0, 1]; inside the estimator they
  are mapped to [-1, 1] as the authors' code does (its loss thresholds assume that range);
* a kernel is a float64 ``[ksize, ksize]`` array of non-negative weights summing to 1; pixel ``(row,
  col)`` sits at ``x = col - c, y = row - c`` with ``c = ksize / 2 - 0.5``;
* ``degrade(hr, kernel, scale, 'direct')`` *correlates* with the kernel and keeps the HR pixels ``0,
  s, 2s, ...``: the low-resolution pixel ``i`` is the kernel's weighted average centred on HR pixel
  ``s * i``.  A kernel whose centre of mass is at ``c`` therefore does not shift the image, and this
  is where the estimate is centred: the centre-of-mass loss targets the middle pixel of ``G``'s
  support (the authors target ``+0.5`` pixel, the convention of their ZSSR), and the final kernel is
  shifted (cubic-spline, sub-pixel) so that its centre of mass is exactly at ``(c, c)``.  The GAN
  itself cannot see a shift of the kernel (a shifted image is as realistic), so the centring is a
  convention, the same as the one of the kernels the project degrades with.

Deviations from the authors' settings (speed: a 60 s budget per BSD100 image on a 2-core CPU;
robustness; see :class:`KernelGANConfig`):

* ``G`` is *trained through its collapsed kernel*: ``G(x)`` is computed as one 13x13 correlation with
  stride 2 with the kernel collapsed from ``G``'s weights (:func:`collapsed_kernel`, contracted from
  the single output channel backwards, a few million multiply-adds).  This is the same function of
  the same parameters, hence the same losses and gradients as running the layers (the deep linear
  over-parameterisation, which the paper credits for the optimisation, is kept), at a small fraction
  of the cost; :func:`apply_generator_layers` runs the layers, for the tests.
* 2000 iterations instead of the authors' 3000 (``iterations``; 3000 take about 35-40 s here, within
  budget but without margin; widths, crops and learning rates are the authors').  The authors'
  schedule is kept in proportion: learning rates divided by 10 at each quarter (the authors: every
  750 of 3000), the bicubic weight divided by 100 every fifteenth (every 200 of 3000) once G is close
  to bicubic, the centre-of-mass and sparsity losses switched on once it is below 5e-3;
* the sum-to-1 weight is 5 instead of 0.5 (``sum_to_one_weight``): at 0.5 the generator collapsed to
  a near-zero kernel (sum about 0) on 2 of the first 5 BSD100 images;
* GAN loss: L1 distance of D's map to the labels, as the authors' code (``gan_loss='l1'``); the
  paper's least-squares form is ``gan_loss='lsgan'`` (it collapsed too at sum-to-1 weight 0.5);
* the bicubic loss compares ``G``'s output with a pixel-centred bicubic (antialiased cubic, 7x7)
  down-scaling, the project's convention, instead of the authors' half-pixel-shifted 8x8 one;
* the sparsity loss is taken of the kernel divided by the sum of its absolute values: the authors'
  (of the raw kernel) can be lowered by shrinking the whole kernel;
* crops for ``G`` and ``D`` are drawn from one gradient map of the input (the authors draw ``G``'s
  from the map of a bicubic-down-scaled copy); the input is not shaved by 10 pixels (the authors
  shave synthetic images), only cropped to even sizes.

Randomness: everything random (weights, crops, noise) comes from ``seed``; no global state is read
or written, so the same call gives the same kernel (up to TensorFlow's non-deterministic CPU
reductions, which are small).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mzsr_tf.config import ConfigError, _option, check_fields
from mzsr_tf.metrics import luminance, modcrop
from mzsr_tf.training import make_adam

__all__ = [
    "KernelGANConfig", "ImageTooSmallError", "KernelEstimator", "estimate_kernel", "kernel_error",
    "degradation_psnr", "collapsed_kernel", "apply_generator_layers", "apply_collapsed_kernel",
    "sum_to_one_loss", "boundaries_loss", "boundaries_mask", "sparsity_loss", "centre_of_mass_loss",
    "bicubic_loss", "bicubic_downscale_kernel", "crop_probabilities", "sample_crop_corners",
    "compose_x4_kernel", "postprocess_kernel", "minimum_image_size",
]

SUPPORTED_SCALES = (2, 4)
GAN_LOSSES = ("lsgan", "l1")
_BICUBIC_DONE_THRESHOLD = 0.4      # the authors': bicubic MSE (images in [-1, 1]) below which, 3 times in a
_BICUBIC_DONE_COUNT = 3            # row, G counts as "similar to bicubic" and the bicubic weight starts to decay
_BICUBIC_DECAY = 100.0             # the bicubic weight is divided by this at each decay step
_BICUBIC_MIN_WEIGHT = 5e-6
_CONSTRAINTS_ON_BELOW = 5e-3       # centre-of-mass and sparsity losses start below this bicubic weight
_LR_DECAY = 10.0


class ImageTooSmallError(ValueError):
    """The image is smaller than the crops KernelGAN trains on; the message says the minimum size."""


@dataclasses.dataclass(frozen=True)
class KernelGANConfig:
    """Settings of :func:`estimate_kernel`; every field is checked when the config is built
    (``ConfigError``, a ``ValueError``, naming the field and its allowed range).  Defaults: about 22 s per
    BSD100 image (240x160 at x2) on 2 CPU cores shared with a training job."""

    iterations: int = _option(2000, "training iterations (one G step and one D step each)", low=1)
    """The authors use 3000.  About 11 ms each on 2 CPU cores shared with another training job (2000:
    about 22 s per BSD100 image)."""
    g_channels: int = _option(64, "hidden channels of the linear generator (the authors: 64)", low=1)
    g_layer_sizes: Tuple[int, ...] = _option((7, 5, 3, 1, 1, 1), "kernel sizes of G's convolutions", low=1)
    """The last has stride 2 and must be 1; the kernel's support is ``sum(size - 1) + 1`` (13 for the
    default), which must be odd."""
    d_channels: int = _option(64, "hidden channels of the discriminator (the authors: 64)", low=1)
    d_layers: int = _option(7, "convolutions of the discriminator (the authors: 7)", low=2)
    """A ``d_kernel_size`` one, ``d_layers - 2`` 1x1 ones with batch norm and ReLU, a 1x1 one to the
    output map."""
    d_kernel_size: int = _option(7, "kernel size of D's first convolution: the size of the patches it judges",
                                 low=1)
    crop_size: int = _option(64, "side of the input crops G down-scales (the authors: 64)", low=1)
    """D's real crops have G's output size, ``(crop_size - support) // 2 + 1`` (26 for the default)."""
    g_lr: float = _option(2e-4, "Adam learning rate of G (the authors: 2e-4)", low=0, low_open=True)
    """Divided by 10 at each quarter of the iterations (as ``d_lr``)."""
    d_lr: float = _option(2e-4, "Adam learning rate of D (the authors: 2e-4)", low=0, low_open=True)
    beta1: float = _option(0.5, "Adam's first-moment decay for both networks (the authors: 0.5; beta2 is "
                           "0.999)", low=0, high=1, high_open=True)
    gan_loss: str = _option("l1", "distance of D's map to the labels: lsgan (squared) or l1 (absolute, the "
                            "authors' code)", choices=GAN_LOSSES)
    bicubic_weight: float = _option(5.0, "initial weight of the bicubic loss (the authors: 5)", low=0)
    """Divided by 100 every ``iterations / 15`` iterations once G is close to bicubic."""
    sum_to_one_weight: float = _option(5.0, "weight of the sum-to-1 loss", low=0)
    """The authors: 0.5; at 0.5, G collapsed to a near-zero kernel on 2 of 5 BSD100 images at 2000
    iterations."""
    boundaries_weight: float = _option(0.5, "weight of the boundaries loss (the authors: 0.5)", low=0)
    centre_weight: float = _option(1.0, "weight of the centre-of-mass loss once switched on (the authors: 1)",
                                   low=0)
    sparsity_weight: float = _option(5.0, "weight of the sparsity loss once switched on (the authors: 5)",
                                     low=0)
    keep_largest: int = _option(40, "post-processing: entries below 0.75 times the keep_largest + 1-th "
                                "largest are zeroed (0 keeps every entry)", low=0)
    """That value is also subtracted, as the authors' ``n_filtering`` (40)."""
    ksize: int = _option(21, "side of the returned kernel", low=1)
    """The estimate is zero-padded (or, if larger, cropped) around its centre to ``[ksize, ksize]``."""
    luminance: bool = _option(False, "estimate from the luminance (BT.601 Y) of an RGB image")
    """Instead of its 3 channels (D then has one input channel); faster, slightly less information."""

    def __post_init__(self):
        check_fields(self)
        if not self.g_layer_sizes:
            raise ConfigError("KernelGANConfig.g_layer_sizes must hold at least one size")
        if self.g_layer_sizes[-1] != 1:
            raise ConfigError(f"KernelGANConfig.g_layer_sizes: the last (strided) layer must be 1x1, "
                              f"got {self.g_layer_sizes!r}")
        if self.support % 2 != 1:
            raise ConfigError(f"KernelGANConfig.g_layer_sizes must give an odd support (sum(size - 1) "
                              f"+ 1), got {self.support} from {self.g_layer_sizes!r}")
        if self.crop_size < self.support + 2 * (self.d_kernel_size - 1):
            raise ConfigError(f"KernelGANConfig.crop_size ({self.crop_size}) is too small: G's output "
                              f"must be at least as large as D's first kernel, which needs crop_size >= "
                              f"{self.support + 2 * (self.d_kernel_size - 1)}")

    @property
    def support(self) -> int:
        """Side of G's collapsed kernel: ``sum(size - 1) + 1`` over ``g_layer_sizes``."""
        return sum(size - 1 for size in self.g_layer_sizes) + 1

    @property
    def d_crop_size(self) -> int:
        """Side of D's inputs: G's output side for a ``crop_size`` crop."""
        return (self.crop_size - self.support) // 2 + 1


# --------------------------------------------------------------------------------------------------
# The generator: a deep linear network, and its collapsed kernel.

def collapsed_kernel(g_weights: Sequence[tf.Tensor]) -> tf.Tensor:
    """The single correlation kernel equivalent to G's layers (before the final stride).

    Args:
      g_weights: G's convolution weights, first layer first, ``[k_i, k_i, c_in_i, c_out_i]`` (HWIO,
        ``tf.nn.conv2d``'s layout), with ``c_in`` of the first and ``c_out`` of the last equal to 1.

    Returns:
      ``[support, support]`` tensor (the weights' dtype), ``support = sum(k_i - 1) + 1`` (per axis
      for non-square layers): correlating
      a one-channel image with it (valid) equals running the layers with stride 1 (valid); with the
      final stride ``s`` G's output is that correlation at every ``s``-th pixel.  Differentiable.

    The layers are contracted from the output backwards (the output has one channel), so each step
    is a small full convolution of a ``[h, w, c_out]`` partial kernel with one layer.
    """
    partial = tf.ones([1, 1, 1, 1], dtype=g_weights[-1].dtype)  # [1, h, w, channels of layer output]
    for weight in reversed(list(g_weights)):
        rows, cols = int(weight.shape[0]), int(weight.shape[1])
        # composed[t] = sum_u weight[u] partial[t - u]: a full convolution = correlation of the
        # zero-padded partial kernel with the flipped weight, mapping c_out -> c_in.
        padded = tf.pad(partial, [[0, 0], [rows - 1, rows - 1], [cols - 1, cols - 1], [0, 0]])
        flipped = tf.transpose(tf.reverse(weight, axis=[0, 1]), [0, 1, 3, 2])
        partial = tf.nn.conv2d(padded, flipped, strides=1, padding="VALID")
    return partial[0, :, :, 0]


def apply_generator_layers(images: tf.Tensor, g_weights: Sequence[tf.Tensor], scale: int = 2) -> tf.Tensor:
    """Run G's layers: ``images`` ``[N, H, W, 1]`` -> ``[N, (H - support) // scale + 1, ..., 1]``.

    Valid convolutions without biases, stride ``scale`` on the last (1x1) layer, as the authors' G
    (each colour channel is a separate image of the batch).
    """
    x = images
    for index, weight in enumerate(g_weights):
        stride = scale if index == len(g_weights) - 1 else 1
        x = tf.nn.conv2d(x, weight, strides=stride, padding="VALID")
    return x


def apply_collapsed_kernel(images: tf.Tensor, kernel: tf.Tensor, scale: int = 2) -> tf.Tensor:
    """Correlate ``images`` ``[N, H, W, 1]`` with ``kernel`` ``[k, k]`` (valid) and keep every
    ``scale``-th pixel from the first: ``[N, (H - k) // scale + 1, (W - k) // scale + 1, 1]``."""
    return tf.nn.conv2d(images, kernel[:, :, None, None], strides=scale, padding="VALID")


# --------------------------------------------------------------------------------------------------
# Regularisers of the kernel (all differentiable, on a [k, k] float tensor).

def sum_to_one_loss(kernel: tf.Tensor) -> tf.Tensor:
    """``|1 - sum(kernel)|``: a blur kernel keeps the brightness."""
    return tf.abs(1.0 - tf.reduce_sum(kernel))


def boundaries_mask(size: int, penalty: float = 30.0) -> np.ndarray:
    """Float64 ``[size, size]`` weights penalising kernel mass far from the centre (the authors' mask).

    ``penalty * (1 - g / max g)`` with ``g`` a Gaussian of standard deviation ``size``, zeroed in the
    central ``size - 2 * margin`` square, ``margin = (size - (size // 2 + size % 2)) // 2 - 1``
    (a 13x13 kernel: its 9x9 centre is free, its 2-pixel frame is penalised).
    """
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    gaussian_1d = np.exp(-coords ** 2 / (2.0 * size ** 2))
    gaussian = np.outer(gaussian_1d, gaussian_1d)
    mask = penalty * (1.0 - gaussian / gaussian.max())
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    if margin > 0:  # (for margin <= 0 nothing is freed, as the authors' slicing ``[0:-0]``)
        mask[margin:-margin, margin:-margin] = 0.0
    return mask


def boundaries_loss(kernel: tf.Tensor, mask) -> tf.Tensor:
    """Mean of ``|kernel * mask|`` (``mask`` from :func:`boundaries_mask`)."""
    return tf.reduce_mean(tf.abs(kernel * tf.cast(mask, kernel.dtype)))


def sparsity_loss(kernel: tf.Tensor, power: float = 0.2) -> tf.Tensor:
    """Mean of ``|kernel| ** power`` (power 0.2, the authors'): favours few non-zero entries."""
    # The gradient of |x|^0.2 is infinite at 0: exact zeros (never met in training) count 0, gradient 0.
    magnitude = tf.abs(kernel)
    nonzero = magnitude > 0
    safe = tf.where(nonzero, magnitude, tf.ones_like(magnitude))
    return tf.reduce_mean(tf.where(nonzero, tf.pow(safe, power), tf.zeros_like(magnitude)))


def centre_of_mass_loss(kernel: tf.Tensor, target: Optional[float] = None) -> tf.Tensor:
    """Mean squared distance (over rows and columns) of the kernel's centre of mass from ``target``.

    Centre of mass in pixel indices: ``(sum_r r * rowsum_r, sum_c c * colsum_c) / sum(kernel)``;
    ``target`` defaults to the middle ``(k - 1) / 2``, the project's centre (no shift under direct
    subsampling).
    """
    size = int(kernel.shape[0])
    if target is None:
        target = (size - 1) / 2.0
    indices = tf.range(size, dtype=kernel.dtype)
    total = tf.reduce_sum(kernel)
    row_centre = tf.reduce_sum(tf.reduce_sum(kernel, axis=1) * indices) / total
    col_centre = tf.reduce_sum(tf.reduce_sum(kernel, axis=0) * indices) / total
    return 0.5 * ((row_centre - target) ** 2 + (col_centre - target) ** 2)


def bicubic_downscale_kernel(support: int, scale: int = 2) -> np.ndarray:
    """Float64 ``[support, support]``: MATLAB's antialiased cubic down-scaling by ``scale`` centred on the
    middle pixel (weights ``cubic(d / scale) / scale``, ``|d| < 2 scale``), zero-padded to ``support``.

    Correlating with it and keeping every ``scale``-th pixel is the bicubic down-scaling whose output
    pixel ``i`` sits on input pixel ``scale * i + (support - 1) / 2``, the alignment of G's output.
    """
    reach = 2 * scale - 1
    if support < 2 * reach + 1:
        raise ValueError(f"bicubic_downscale_kernel: support {support} < {2 * reach + 1}")
    d = np.arange(-reach, reach + 1, dtype=np.float64) / scale
    a = np.abs(d)
    cubic = np.where(a <= 1, 1.5 * a ** 3 - 2.5 * a ** 2 + 1,
                     np.where(a <= 2, -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2, 0.0))
    weights = cubic / cubic.sum()
    kernel = np.zeros((support, support))
    start = (support - 1) // 2 - reach
    kernel[start:start + 2 * reach + 1, start:start + 2 * reach + 1] = np.outer(weights, weights)
    return kernel


def bicubic_loss(g_output: tf.Tensor, g_input: tf.Tensor, bicubic_kernel, scale: int = 2) -> tf.Tensor:
    """Mean squared difference between G's output and the bicubic down-scaling of its input.

    ``g_input`` ``[N, H, W, 1]``, ``g_output`` its G image; ``bicubic_kernel`` from
    :func:`bicubic_downscale_kernel` (G's support), so both are aligned pixel for pixel.
    """
    target = apply_collapsed_kernel(g_input, tf.cast(bicubic_kernel, g_input.dtype), scale)
    return tf.reduce_mean(tf.square(g_output - target))


# --------------------------------------------------------------------------------------------------
# Crop sampling weighted by gradient magnitude.

def _box_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size x size`` window centred on each pixel (zero outside), 'same' size."""
    from scipy.ndimage import uniform_filter
    return np.clip(uniform_filter(image, size=size, mode="constant"), 0.0, None)  # no rounding negatives


def _top_fraction_mask(values: np.ndarray, fraction: float) -> np.ndarray:
    """1 where ``values`` is in its top ``fraction`` (ties broken as the authors: strictly above the
    pivot value), else 0; all ones if the image is flat."""
    pivot = np.sort(values.ravel())[int((1 - fraction) * values.size)]
    mask = (values > pivot).astype(np.float64)
    return mask if mask.sum() > 0 else np.ones_like(values)


def crop_probabilities(gray: np.ndarray, crop: int, window: int = 5, fraction: float = 0.03) -> np.ndarray:
    """Probability of each pixel as the centre of a ``crop x crop`` crop, favouring textured regions.

    As the authors' ``create_gradient_map`` + ``create_probability_map``: the pixels with the top 3 %
    of ``|d/dx|``, of ``|d/dy|`` and of the gradient magnitude (borders of ``window`` pixels excluded)
    make three maps, each normalised to sum 1 and added, blurred with a ``window`` box, then averaged
    over ``crop // 2`` boxes; centres closer than ``crop // 2`` to the border get probability 0.

    Args:
      gray: float ``[H, W]`` image (any range).
    Returns:
      float64 ``[H, W]`` summing to 1.
    """
    gy, gx = np.gradient(np.asarray(gray, np.float64))
    maps = []
    for values in (np.abs(gx), np.abs(gy), np.hypot(gx, gy)):
        inner = np.zeros_like(values)
        inner[window:-window, window:-window] = values[window:-window, window:-window]
        mask = _top_fraction_mask(inner, fraction)
        maps.append(mask / mask.sum())
    loss_map = _box_filter(sum(maps), window)
    half = max(crop // 2, 1)
    blurred = _box_filter(loss_map, half)
    probabilities = np.zeros_like(blurred)
    if blurred.shape[0] > 2 * half and blurred.shape[1] > 2 * half:
        probabilities[half:-half, half:-half] = blurred[half:-half, half:-half]
    if not probabilities.sum() > 0:
        probabilities = np.ones_like(blurred)
    return probabilities / probabilities.sum()


def sample_crop_corners(probabilities: np.ndarray, crop: int, count: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``count`` top-left corners ``(row, col)`` (int32 ``[count, 2]``) of ``crop x crop`` crops.

    Centres are drawn from ``probabilities`` (:func:`crop_probabilities`), moved inside the image and
    rounded down to even coordinates (the authors' alignment with the stride-2 generator).
    """
    height, width = probabilities.shape
    centres = rng.choice(probabilities.size, size=count, p=probabilities.ravel())
    rows, cols = centres // width, centres % width
    top = np.clip(rows - crop // 2, 0, height - crop)
    left = np.clip(cols - crop // 2, 0, width - crop)
    return np.stack([top - top % 2, left - left % 2], axis=1).astype(np.int32)


# --------------------------------------------------------------------------------------------------
# Kernel post-processing and the x4 kernel.

def compose_x4_kernel(kernel_x2: np.ndarray) -> np.ndarray:
    """The x4 kernel of the x2 kernel ``k`` (odd ``[k, k]``): ``k * (k upsampled by 2)``, as the authors'
    ``analytic_kernel`` (full size ``3k - 2``, cropped by ``k // 2`` each side, normalised to sum 1).

    Centred: the middle pixel of ``k`` lands on the middle pixel of the result, so a kernel that does
    not shift under x2 direct subsampling gives one that does not shift under x4.
    """
    k = np.asarray(kernel_x2, np.float64)
    size = k.shape[0]
    big = np.zeros((3 * size - 2, 3 * size - 2))
    for r in range(size):
        for c in range(size):
            big[2 * r:2 * r + size, 2 * c:2 * c + size] += k[r, c] * k
    crop = size // 2
    big = big[crop:big.shape[0] - crop, crop:big.shape[1] - crop]
    return big / big.sum()


def _centre_of_mass(kernel: np.ndarray) -> np.ndarray:
    total = kernel.sum()
    rows = np.arange(kernel.shape[0])
    cols = np.arange(kernel.shape[1])
    return np.array([(kernel.sum(axis=1) * rows).sum() / total, (kernel.sum(axis=0) * cols).sum() / total])


def _fit_to_size(kernel: np.ndarray, ksize: int) -> np.ndarray:
    """Zero-pad or crop an odd kernel around its middle pixel to ``[ksize, ksize]`` (odd or even
    ``ksize``; for even sizes the middle pixel goes to ``ksize // 2`` and is re-centred by the shift)."""
    size = kernel.shape[0]
    out = np.zeros((ksize, ksize))
    centre_in, centre_out = size // 2, ksize // 2
    lo = max(0, centre_in - centre_out)
    hi = min(size, centre_in + (ksize - centre_out))
    dst = centre_out - (centre_in - lo)
    out[dst:dst + hi - lo, dst:dst + hi - lo] = kernel[lo:hi, lo:hi]
    return out


def postprocess_kernel(kernel: np.ndarray, ksize: int, keep_largest: int = 40) -> np.ndarray:
    """Estimated kernel -> float64 ``[ksize, ksize]``, non-negative, summing to 1, centre of mass at the
    project's centre ``c = ksize / 2 - 0.5``.

    Small entries are zeroed as the authors' ``zeroize_negligible_val`` (``keep_largest``; 0 skips
    it), the kernel is zero-padded (or cropped) around its middle pixel, then shifted by a cubic
    spline so its centre of mass is at ``(c, c)`` (twice, as clipping the spline's small negative
    lobes moves it slightly), negatives clipped and the sum normalised.
    """
    from scipy.ndimage import shift as spline_shift
    k = np.asarray(kernel, np.float64)
    k = np.clip(k, 0.0, None)
    if not k.sum() > 0:
        raise ValueError("postprocess_kernel: the estimated kernel has no positive entry")
    if keep_largest > 0 and keep_largest < k.size:
        floor = 0.75 * np.sort(k.ravel())[-keep_largest - 1]
        k = np.clip(k - floor, 0.0, None)
    k = _fit_to_size(k / k.sum(), ksize)
    centre = ksize / 2.0 - 0.5
    for _ in range(2):
        offset = centre - _centre_of_mass(k)
        if np.max(np.abs(offset)) < 1e-4:
            break
        k = np.clip(spline_shift(k, offset, order=3, mode="constant"), 0.0, None)
        k = k / k.sum()
    return k


# --------------------------------------------------------------------------------------------------
# The discriminator and the training loop.

def _xavier_normal(rng: np.random.Generator, shape, gain: float) -> np.ndarray:
    receptive = int(np.prod(shape[:-2]))
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal(shape) * std).astype(np.float32)


def _unit(rng: np.random.Generator, size: int) -> np.ndarray:
    v = rng.standard_normal(size)
    return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)


def minimum_image_size(config: KernelGANConfig = KernelGANConfig()) -> int:
    """Smallest height and width (pixels) :func:`estimate_kernel` accepts: the G crop side."""
    return config.crop_size


class KernelEstimator:
    """A KernelGAN estimator; one object can estimate the kernels of many images (of any size) and
    keeps its compiled training step between them (:meth:`estimate`).

    Every :meth:`estimate` re-initialises the networks and optimisers from its ``seed``.
    """

    def __init__(self, config: KernelGANConfig = KernelGANConfig()):
        if not isinstance(config, KernelGANConfig):
            raise ValueError(f"config must be a KernelGANConfig, got {type(config).__name__}")
        self.config = config
        cfg = config
        self._channels = 1 if cfg.luminance else 3
        g_shapes = []
        c_in = 1
        for index, size in enumerate(cfg.g_layer_sizes):
            c_out = 1 if index == len(cfg.g_layer_sizes) - 1 else cfg.g_channels
            g_shapes.append((size, size, c_in, c_out))
            c_in = c_out
        self._g_shapes = g_shapes
        d_shapes = [(cfg.d_kernel_size, cfg.d_kernel_size, self._channels, cfg.d_channels)]
        d_shapes += [(1, 1, cfg.d_channels, cfg.d_channels)] * (cfg.d_layers - 2)
        d_shapes += [(1, 1, cfg.d_channels, 1)]
        self._d_shapes = d_shapes
        zeros = lambda shape: tf.Variable(tf.zeros(shape, tf.float32), trainable=False)
        self.g_weights = [tf.Variable(tf.zeros(s, tf.float32)) for s in g_shapes]
        self.d_weights = [tf.Variable(tf.zeros(s, tf.float32)) for s in d_shapes]
        self.d_biases = [tf.Variable(tf.zeros([s[-1]], tf.float32)) for s in d_shapes]
        self.d_bn_gammas = [tf.Variable(tf.ones([cfg.d_channels], tf.float32)) for _ in d_shapes[1:-1]]
        self.d_bn_betas = [tf.Variable(tf.zeros([cfg.d_channels], tf.float32)) for _ in d_shapes[1:-1]]
        self.d_sn_u = [zeros([s[-1]]) for s in d_shapes]  # spectral-norm power-iteration vectors
        self._g_vars = list(self.g_weights)
        self._d_vars = self.d_weights + self.d_biases + self.d_bn_gammas + self.d_bn_betas
        # the project's Adam (TF1's epsilon), the authors' beta1; the learning rate is set at every step
        self._g_adam = make_adam(cfg.g_lr, beta_1=cfg.beta1)
        self._d_adam = make_adam(cfg.d_lr, beta_1=cfg.beta1)
        self._g_adam.build(self._g_vars)
        self._d_adam.build(self._d_vars)
        self._mask = tf.constant(boundaries_mask(cfg.support), tf.float32)
        self._bicubic = tf.constant(bicubic_downscale_kernel(cfg.support, 2), tf.float32)
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._current_kernel = tf.function(lambda: collapsed_kernel(self.g_weights))
        self.last_raw_kernel: Optional[np.ndarray] = None

    # -- initialisation
    def _initialise(self, rng: np.random.Generator):
        for var, shape in zip(self.g_weights, self._g_shapes):
            var.assign(_xavier_normal(rng, shape, 0.1))
        for var, shape in zip(self.d_weights, self._d_shapes):
            var.assign(_xavier_normal(rng, shape, 0.1))
        for var in self.d_biases + self.d_bn_betas:
            var.assign(tf.zeros_like(var))
        for var in self.d_bn_gammas:
            var.assign(rng.normal(1.0, 0.02, var.shape).astype(np.float32))
        for var in self.d_sn_u:
            var.assign(_unit(rng, var.shape[0]))
        for variable in self._g_adam.variables + self._d_adam.variables:  # fresh moments, step 0
            variable.assign(tf.zeros_like(variable))

    # -- networks
    def _discriminator(self, images):
        """``images`` ``[N, h, w, C]`` in [-1, 1] -> ``[N, h - d_kernel_size + 1, ..., 1]`` in (0, 1)."""
        x = images
        last = len(self.d_weights) - 1
        for index, (weight, bias, u_var) in enumerate(zip(self.d_weights, self.d_biases, self.d_sn_u)):
            matrix = tf.reshape(weight, [-1, weight.shape[-1]])  # [fan_in, out]
            u = u_var
            v = tf.linalg.l2_normalize(tf.linalg.matvec(matrix, u))          # W^T u, W = matrix^T
            u = tf.linalg.l2_normalize(tf.linalg.matvec(matrix, v, transpose_a=True))
            u, v = tf.stop_gradient(u), tf.stop_gradient(v)
            u_var.assign(u)
            sigma = tf.tensordot(u, tf.linalg.matvec(matrix, v, transpose_a=True), 1)
            x = tf.nn.conv2d(x, weight / sigma, strides=1, padding="VALID") + bias
            if 0 < index < last:
                mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
                x = tf.nn.batch_normalization(x, mean, variance, self.d_bn_betas[index - 1],
                                              self.d_bn_gammas[index - 1], 1e-5)
                x = tf.nn.relu(x)
        return tf.sigmoid(x)

    def _gan_loss(self, d_map, label: float):
        if self.config.gan_loss == "l1":
            return tf.reduce_mean(tf.abs(d_map - label))
        return tf.reduce_mean(tf.square(d_map - label))

    def _train_step(self, image, g_corner, d_corner, noise_seed, g_lr, d_lr, bicubic_weight,
                    centre_weight, sparsity_weight):
        """One G step then one D step. ``image`` ``[H, W, C]`` in [-1, 1]; corners int32 ``[2]``."""
        cfg = self.config
        crop, d_crop = cfg.crop_size, cfg.d_crop_size
        g_crop = tf.slice(image, tf.concat([g_corner, [0]], 0), [crop, crop, self._channels])
        g_input = tf.transpose(g_crop, [2, 0, 1])[:, :, :, None]             # channels as a batch
        real = tf.slice(image, tf.concat([d_corner, [0]], 0), [d_crop, d_crop, self._channels])[None]
        seeds = tf.random.experimental.stateless_split(noise_seed, 2)
        real = real + tf.random.stateless_normal(tf.shape(real), seeds[0]) * (2.0 / 255.0)

        def to_d(g_out):  # [C, h, w, 1] -> [1, h, w, C]
            return tf.transpose(g_out[:, :, :, 0], [1, 2, 0])[None]

        with tf.GradientTape() as tape:
            kernel = collapsed_kernel(self.g_weights)
            g_output = apply_collapsed_kernel(g_input, kernel, 2)
            loss_gan = self._gan_loss(self._discriminator(to_d(g_output)), 1.0)
            loss_bicubic = bicubic_loss(g_output, g_input, self._bicubic, 2)
            loss_g = (loss_gan + bicubic_weight * loss_bicubic
                      + cfg.sum_to_one_weight * sum_to_one_loss(kernel)
                      + cfg.boundaries_weight * boundaries_loss(kernel, self._mask)
                      + centre_weight * centre_of_mass_loss(kernel)
                      + sparsity_weight * sparsity_loss(kernel / tf.reduce_sum(tf.abs(kernel))))
        _adam_step(self._g_adam, tape.gradient(loss_g, self._g_vars), self._g_vars, g_lr)

        fake = to_d(apply_collapsed_kernel(g_input, collapsed_kernel(self.g_weights), 2))
        fake = tf.stop_gradient(fake + tf.random.stateless_normal(tf.shape(fake), seeds[1]) / 255.0)
        with tf.GradientTape() as tape:
            loss_d = 0.5 * (self._gan_loss(self._discriminator(real), 1.0)
                            + self._gan_loss(self._discriminator(fake), 0.0))
        _adam_step(self._d_adam, tape.gradient(loss_d, self._d_vars), self._d_vars, d_lr)
        return loss_bicubic, loss_gan, loss_d

    # -- the estimate
    name = "kernelgan"

    @property
    def minimum_side(self) -> int:
        """The smallest image side :meth:`estimate` accepts (:func:`minimum_image_size`)."""
        return minimum_image_size(self.config)

    def estimate(self, lr: np.ndarray, scale: int = 2, seed: int = 0,
                 progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """See :func:`estimate_kernel`."""
        cfg = self.config
        image = _prepare_image(lr, cfg)
        if isinstance(scale, bool) or scale not in SUPPORTED_SCALES:
            raise ValueError(f"estimate_kernel: scale must be 2 or 4, got {scale!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"estimate_kernel: seed must be an integer >= 0, got {seed!r}")
        if image.shape[0] < cfg.crop_size or image.shape[1] < cfg.crop_size:
            raise ImageTooSmallError(
                f"image of {lr.shape[0]}x{lr.shape[1]} pixels is too small to estimate a kernel from: "
                f"KernelGAN needs at least {cfg.crop_size}x{cfg.crop_size} (after cropping to even "
                f"sizes), the generator's input crop (KernelGANConfig.crop_size)")
        rng = np.random.default_rng(seed)
        self._initialise(rng)
        gray = image.mean(axis=2) if image.shape[2] > 1 else image[..., 0]
        g_corners = sample_crop_corners(crop_probabilities(gray, cfg.crop_size), cfg.crop_size,
                                        cfg.iterations, rng)
        d_corners = sample_crop_corners(crop_probabilities(gray, cfg.d_crop_size), cfg.d_crop_size,
                                        cfg.iterations, rng)
        noise_base = int(rng.integers(0, 2 ** 31 - 1))
        image_t = tf.constant(image * 2.0 - 1.0, tf.float32)

        lr_decay_every = max(1, round(cfg.iterations / 4))
        bicubic_decay_every = max(1, round(cfg.iterations / 15))
        g_lr, d_lr = cfg.g_lr, cfg.d_lr
        bicubic_weight, centre_weight, sparsity_weight = cfg.bicubic_weight, 0.0, 0.0
        close_count, close_to_bicubic = 0, False
        for iteration in range(cfg.iterations):
            if iteration > 0 and iteration % lr_decay_every == 0:
                g_lr, d_lr = g_lr / _LR_DECAY, d_lr / _LR_DECAY
            if close_to_bicubic and iteration > 0 and iteration % bicubic_decay_every == 0 \
                    and bicubic_weight > _BICUBIC_MIN_WEIGHT:
                bicubic_weight = max(bicubic_weight / _BICUBIC_DECAY, _BICUBIC_MIN_WEIGHT)
                if bicubic_weight < _CONSTRAINTS_ON_BELOW:
                    centre_weight, sparsity_weight = cfg.centre_weight, cfg.sparsity_weight
            loss_bicubic, _, _ = self._step(
                image_t, tf.constant(g_corners[iteration]), tf.constant(d_corners[iteration]),
                tf.constant([noise_base, iteration], tf.int64),
                tf.constant(g_lr, tf.float32), tf.constant(d_lr, tf.float32),
                tf.constant(bicubic_weight, tf.float32), tf.constant(centre_weight, tf.float32),
                tf.constant(sparsity_weight, tf.float32))
            if not close_to_bicubic:
                if float(loss_bicubic) < _BICUBIC_DONE_THRESHOLD:
                    close_count += 1
                    close_to_bicubic = close_count >= _BICUBIC_DONE_COUNT
                else:
                    close_count = 0
            if progress is not None:
                progress(iteration + 1, cfg.iterations)
        raw = self._current_kernel().numpy().astype(np.float64)
        self.last_raw_kernel = raw  # G's collapsed kernel before post-processing, for diagnostics
        if not np.all(np.isfinite(raw)):
            raise FloatingPointError("KernelGAN diverged: the estimated kernel is not finite")
        if scale == 4:
            kernel_x2 = postprocess_kernel(raw, cfg.support, cfg.keep_largest)
            return postprocess_kernel(compose_x4_kernel(kernel_x2), cfg.ksize, keep_largest=0)
        return postprocess_kernel(raw, cfg.ksize, cfg.keep_largest)


def _adam_step(adam, gradients, variables, learning_rate) -> None:
    """One Adam step at this step's ``learning_rate`` (a tensor: KernelGAN's rates decay)."""
    adam.learning_rate.assign(learning_rate)
    adam.apply_gradients(zip(gradients, variables))


def _prepare_image(lr, config: KernelGANConfig) -> np.ndarray:
    """float32 ``[H, W, C]`` in [0, 1] (C = 3, or 1 for grayscale/luminance), cropped to even sizes."""
    image = np.asarray(lr)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"estimate_kernel: lr must be an [H, W, 3] or [H, W] image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"estimate_kernel: lr must be a float image in [0, 1], got dtype {image.dtype}")
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)):
        raise ValueError("estimate_kernel: lr has non-finite values")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2) if not config.luminance else image
    elif config.luminance:
        image = luminance(image).astype(np.float32)[:, :, None]
    return modcrop(image, 2)


def estimate_kernel(lr: np.ndarray, scale: int = 2, config: KernelGANConfig = KernelGANConfig(),
                    seed: int = 0, progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Estimate the blur kernel that made the low-resolution image ``lr``, with KernelGAN.

    Args:
      lr: float ``[H, W, 3]`` (or ``[H, W]``, ``[H, W, 1]``) image in [0, 1]; at least
        ``config.crop_size`` pixels high and wide (after cropping to even sizes).
      scale: 2 or 4 (x4: the x2 kernel composed with itself, :func:`compose_x4_kernel`).
      config: :class:`KernelGANConfig`.
      seed: integer >= 0; all randomness (weights, crops, noise) comes from it.
      progress: optional ``progress(iteration, total)`` called after each iteration (1-based).

    Returns:
      float64 ``[config.ksize, config.ksize]`` kernel, non-negative, summing to 1, centre of mass at
      ``c = ksize / 2 - 0.5`` (the project's convention: ``degrade(hr, kernel, scale, 'direct')`` does
      not shift the image).

    Raises:
      ImageTooSmallError: the image is smaller than the generator's crop.
      ValueError: bad ``lr``, ``scale`` or ``seed``.
    """
    return KernelEstimator(config).estimate(lr, scale, seed, progress)


# --------------------------------------------------------------------------------------------------
# Comparing kernels.

def _centre_on(kernel: np.ndarray, size: int) -> np.ndarray:
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel_error: kernels must be square 2-D arrays, got shape {k.shape}")
    pad = (size - k.shape[0]) // 2
    return np.pad(k, pad)


def kernel_error(estimated: np.ndarray, true: np.ndarray) -> float:
    """L2 (Frobenius) distance between two kernels after zero-padding both, centred, to the same size.

    Both square, both odd or both even sides (their centres then coincide in the project's
    convention); neither is renormalised or shifted, so a mis-centred estimate counts as an error.
    For scale: the L2 norm of a 21x21 g2.0 kernel is about 0.2.
    """
    a, b = np.asarray(estimated, np.float64), np.asarray(true, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != a.shape[1] or b.shape[0] != b.shape[1]:
        raise ValueError(f"kernel_error: kernels must be square 2-D arrays, got shapes {a.shape} and {b.shape}")
    if (a.shape[0] - b.shape[0]) % 2:
        raise ValueError(f"kernel_error: kernel sides must be both odd or both even, got {a.shape} and "
                         f"{b.shape}")
    size = max(a.shape[0], b.shape[0])
    return float(np.linalg.norm(_centre_on(a, size) - _centre_on(b, size)))


def degradation_psnr(estimated: np.ndarray, true: np.ndarray, hr: np.ndarray, scale: int = 2) -> float:
    """PSNR (dB, peak 1, float images) between ``hr`` degraded (direct) by ``estimated`` and by ``true``:
    how much the estimate's error matters for the images it produces.  ``hr`` float ``[H, W, C]`` in
    [0, 1]."""
    from mzsr_tf.degradation import degrade
    a = degrade(hr, np.asarray(estimated, np.float64), scale, "direct")
    b = degrade(hr, np.asarray(true, np.float64), scale, "direct")
    mse = float(np.mean((a - b) ** 2))
    return 100.0 if mse == 0 else 10.0 * math.log10(1.0 / mse)
