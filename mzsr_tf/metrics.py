"""Image-quality metrics as the reference reports them (``utils.py`` and ``test.py`` of ``JWSoh/MZSR``).

The reference's reported PSNR: both images rounded to uint8 (``round(clip(x * 255))``), converted to
the Y channel of YCbCr (BT.601, uint8 path of :func:`rgb2y`, rounded), a border of ``int(scale)``
pixels shaved, then :func:`psnr` (peak 255, 100 dB for identical images).  :func:`psnr_y` does exactly
that; :func:`ssim_y` computes SSIM on the same shaved Y images with the usual SR-paper protocol
(Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 255, statistics
over the window positions inside the image, mean of the SSIM map).

Grayscale images (``[H, W]`` or ``[H, W, 1]``) are taken as their own Y channel.
"""
from __future__ import annotations

import math

import numpy as np

# BT.601 RGB -> Y for values in [0, 255] (MATLAB rgb2ycbcr), as the reference.
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def _check_same_shape(img1: np.ndarray, img2: np.ndarray, what: str):
    if img1.shape != img2.shape:
        raise ValueError(f"{what}: images must have the same shape, got {img1.shape} and {img2.shape}")


def _is_gray(img: np.ndarray) -> bool:
    return img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1)


def rgb2y(img: np.ndarray) -> np.ndarray:
    """Y channel of an RGB ``[H, W, 3]`` image, as the reference's ``rgb2y``.

    * uint8 input: ``round(65.481/255 R + 128.553/255 G + 24.966/255 B + 16)`` as uint8 (computed
      in float64);
    * float input (values in [0, 1]): the same weights plus ``16/255``, float64 (float32 input stays
      float32), not rounded.

    Grayscale input (``[H, W]`` or ``[H, W, 1]``) is returned as ``[H, W]`` unchanged.
    """
    img = np.asarray(img)
    if _is_gray(img):
        return img.reshape(img.shape[:2])
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb2y: expected an [H, W, 3] RGB or [H, W] grayscale image, got shape {img.shape}")
    if img.dtype == np.uint8:
        rgb = img.astype(np.float64)
        y = _Y_WEIGHTS[0] * rgb[:, :, 0] + _Y_WEIGHTS[1] * rgb[:, :, 1] + _Y_WEIGHTS[2] * rgb[:, :, 2] + 16
        return np.round(y).astype(np.uint8)
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"rgb2y: expected a uint8 or float image, got dtype {img.dtype}")
    return (_Y_WEIGHTS[0] * img[:, :, 0] + _Y_WEIGHTS[1] * img[:, :, 1] + _Y_WEIGHTS[2] * img[:, :, 2]
            + 16 / 255.0)


def luminance(image: np.ndarray) -> np.ndarray:
    """float64 ``[H, W]`` luminance (0.299 R + 0.587 G + 0.114 B, no offset: not ``rgb2y``'s MATLAB Y) of a
    ``[H, W, 3]`` or ``[H, W]`` image, in the image's own range (the kernel estimators' grey image)."""
    image = np.asarray(image, np.float64)
    if image.ndim == 3:
        return image[..., :3] @ np.array([0.299, 0.587, 0.114]) if image.shape[2] >= 3 else image[..., 0]
    return image


def modcrop(img: np.ndarray, modulo) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``modulo`` (as the reference).

    ``modulo`` may be a float such as 2.0 (the reference passes the scale); sizes become
    ``int(size - size % modulo)``.  Works on ``[H, W]`` and ``[H, W, C]``.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"modcrop: expected an [H, W] or [H, W, C] image, got shape {img.shape}")
    if not modulo > 0:
        raise ValueError(f"modcrop: modulo must be positive, got {modulo!r}")
    height, width = (int(size - size % modulo) for size in img.shape[:2])
    return img[:height, :width]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels on each side of height and width (``border=0`` keeps the image).

    The reference writes ``img[s:-s, s:-s]``, which is empty for ``s = 0``; here 0 means no shave.
    """
    img = np.asarray(img)
    border = int(border)
    if border < 0:
        raise ValueError(f"shave: border must be >= 0, got {border}")
    if border == 0:
        return img
    if min(img.shape[:2]) <= 2 * border:
        raise ValueError(f"shave: a border of {border} leaves nothing of an image of shape {img.shape}")
    return img[border:-border, border:-border]


def psnr(img1: np.ndarray, img2: np.ndarray) -> float:
    """PSNR in dB as the reference's ``utils.psnr``.

    Computed in float32 (as the reference); 100 for identical images; the peak is 1.0 if
    ``max(img1) <= 1`` and 255 otherwise (``img1`` is the reference image: the reference passes GT first).
    """
    img1 = np.asarray(img1)
    img2 = np.asarray(img2)
    _check_same_shape(img1, img2, "psnr")
    img1 = img1.astype(np.float32)
    img2 = img2.astype(np.float32)
    mse = np.mean((img1 - img2) ** 2)
    if mse == 0:
        return 100.0
    peak = 1.0 if np.max(img1) <= 1.0 else 255.0
    return float(20 * math.log10(peak / math.sqrt(mse)))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """``round(clip(img * 255, 0, 255))`` as uint8: a float image in [0, 1] as the reference saves it."""
    return np.round(np.clip(np.asarray(img) * 255.0, 0.0, 255.0)).astype(np.uint8)


def _y_uint8(img: np.ndarray, what: str) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(f"{what}: expected a uint8 image or a float image in [0, 1], got dtype {img.dtype}")
        img = to_uint8(img)
    return rgb2y(img)


def _shaved_y_pair(sr, gt, shave_border, what):
    sr = np.asarray(sr)
    gt = np.asarray(gt)
    _check_same_shape(sr, gt, what)
    if sr.ndim not in (2, 3):
        raise ValueError(f"{what}: expected [H, W, C] or [H, W] images, got shape {sr.shape}")
    return shave(_y_uint8(sr, what), shave_border), shave(_y_uint8(gt, what), shave_border)


def psnr_y(sr: np.ndarray, gt: np.ndarray, shave_border: int) -> float:
    """PSNR on Y as the reference's test: uint8 rounding, :func:`rgb2y`, shave, :func:`psnr`.

    ``sr`` and ``gt`` are uint8 or float ``[0, 1]`` ``[H, W, 3]`` (or grayscale) images of the same
    shape; ``shave_border`` is ``int(scale)`` in the reference.
    """
    sr_y, gt_y = _shaved_y_pair(sr, gt, shave_border, "psnr_y")
    return psnr(gt_y, sr_y)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 2-D Gaussian window, float64 ``[size, size]``."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    profile = np.exp(-(coords ** 2) / (2.0 * sigma ** 2))
    window = np.outer(profile, profile)
    return window / window.sum()


def ssim(img1: np.ndarray, img2: np.ndarray, data_range: float = 255.0, window_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004), statistics in float64.

    Local means, variances and covariance are Gaussian-weighted over every ``window_size`` window lying
    inside the image ('valid' positions); the result is the mean of the SSIM map.
    """
    from scipy import ndimage

    img1 = np.asarray(img1, dtype=np.float64)
    img2 = np.asarray(img2, dtype=np.float64)
    _check_same_shape(img1, img2, "ssim")
    if img1.ndim != 2:
        raise ValueError(f"ssim: expected single-channel [H, W] images, got shape {img1.shape}")
    if min(img1.shape) < window_size:
        raise ValueError(f"ssim: images of shape {img1.shape} are smaller than the {window_size}x"
                         f"{window_size} window")
    profile = gaussian_window(window_size, sigma)[window_size // 2]
    profile = profile / profile.sum()
    half = window_size // 2
    inner = (slice(half, img1.shape[0] - (window_size - 1 - half)),
             slice(half, img1.shape[1] - (window_size - 1 - half)))

    def local_mean(values):
        # Separable Gaussian; only positions whose window lies inside the image are kept.
        smoothed = ndimage.correlate1d(values, profile, axis=0, mode="constant")
        return ndimage.correlate1d(smoothed, profile, axis=1, mode="constant")[inner]

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu1, mu2 = local_mean(img1), local_mean(img2)
    var1 = local_mean(img1 * img1) - mu1 * mu1
    var2 = local_mean(img2 * img2) - mu2 * mu2
    cov = local_mean(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * cov + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (var1 + var2 + c2))
    return float(ssim_map.mean())


def ssim_y(sr: np.ndarray, gt: np.ndarray, shave_border: int) -> float:
    """SSIM on Y with the protocol of :func:`psnr_y` (uint8, Y, shave), data range 255."""
    sr_y, gt_y = _shaved_y_pair(sr, gt, shave_border, "ssim_y")
    return ssim(gt_y, sr_y, data_range=255.0)
