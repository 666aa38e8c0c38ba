"""Patch extraction with the recipe of the reference's record generators (github ``JWSoh/MainSR``).

The recipe (``generate_TFRecord_MZSR.py``):

1. top-left corners on a grid ``range(0, H - patch + 1, stride)`` x ``range(0, W - patch + 1, stride)``,
   rows outer, columns inner;
2. keep a patch when ``log(mean_sq_gradient + 1e-10) >= -6`` where, on the patch as float64 / 255,
   ``mean_sq_gradient = mean((x[:-1, :-1] - x[1:, :-1])**2 + (x[:-1, :-1] - x[:-1, 1:])**2)``
   (the mean runs over rows, columns and channels);
3. every kept patch in all 8 flips/rotations (``augment``), ordered image by image, then mode by mode,
   then patch by patch, exactly as the reference's loops;
4. a shuffle of the whole list (here with an explicitly passed random generator).

The pretraining recipe (``generate_TFRecord.py``) crops the HR image to a multiple of the scale, cuts
``patch x patch`` HR labels with the same grid and filter, pairs each with the LR patch at
``(i // scale, j // scale)`` of size ``patch // scale``, and does not augment.

All patches are ``uint8`` arrays ``[N, patch, patch, C]``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import numpy as np

GRADIENT_LOG_THRESHOLD = -6.0
NUM_AUGMENTATIONS = 8

RandomGenerator = Union[np.random.Generator, np.random.RandomState]


def patch_origins(height: int, width: int, patch_size: int, stride: int) -> np.ndarray:
    """Top-left corners ``[N, 2]`` (row, column) of the patch grid, rows outer, columns inner."""
    rows = np.arange(0, height - patch_size + 1, stride)
    cols = np.arange(0, width - patch_size + 1, stride)
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([grid_rows.ravel(), grid_cols.ravel()], axis=1)


def cut_patches(image: np.ndarray, origins: np.ndarray, patch_size: int) -> np.ndarray:
    """The ``patch_size`` squares of ``image [H, W, C]`` at ``origins [N, 2]``: ``[N, p, p, C]``."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size), axis=(0, 1))
    # windows: [H - p + 1, W - p + 1, C, p, p] -> pick the origins, move channels last.
    picked = windows[origins[:, 0], origins[:, 1]]
    return np.ascontiguousarray(np.moveaxis(picked, 1, 3))


def gradient_scores(patches: np.ndarray) -> np.ndarray:
    """``mean_sq_gradient`` of each uint8 patch ``[N, p, p, C]`` as the reference computes it: ``[N]``.

    Values are float64 on the patch scaled to [0, 1]; the mean of each patch runs over one
    contiguous block, as ``np.mean`` does on a single patch, so results are bit-identical.
    """
    x = patches.astype(np.float64) / 255.0
    squared = ((x[:, :-1, :-1, :] - x[:, 1:, :-1, :]) ** 2
               + (x[:, :-1, :-1, :] - x[:, :-1, 1:, :]) ** 2)
    return squared.reshape(len(patches), -1).mean(axis=1)


def passes_gradient_filter(patches: np.ndarray,
                           threshold: float = GRADIENT_LOG_THRESHOLD) -> np.ndarray:
    """Boolean mask ``[N]``: ``log(gradient_scores + 1e-10) >= threshold``."""
    return np.log(gradient_scores(patches) + 1e-10) >= threshold


def check_patch_fits(shape: Sequence[int], patch_size: int, name: str) -> None:
    """A ``ValueError`` naming ``name`` when an image of ``shape`` is smaller than one patch."""
    if shape[0] < patch_size or shape[1] < patch_size:
        raise ValueError(f"{name}: image is {shape[0]}x{shape[1]}, smaller than one "
                         f"{patch_size}x{patch_size} patch")


def extract_patches(image: np.ndarray, patch_size: int, stride: int,
                    threshold: float = GRADIENT_LOG_THRESHOLD, name: str = "image") -> np.ndarray:
    """The grid patches of ``image [H, W, C] uint8`` that pass the gradient filter, in grid order.

    An image smaller than one patch is a ``ValueError`` naming ``name``.
    """
    check_patch_fits(image.shape, patch_size, name)
    patches = cut_patches(image, patch_origins(image.shape[0], image.shape[1], patch_size, stride),
                          patch_size)
    return patches[passes_gradient_filter(patches, threshold)]


def extract_pairs(hr: np.ndarray, lr: np.ndarray, patch_size: int, scale: int, stride: int,
                  threshold: float = GRADIENT_LOG_THRESHOLD,
                  name: str = "image") -> Tuple[np.ndarray, np.ndarray]:
    """Pretraining pairs: HR labels ``[N, p, p, C]`` and LR patches ``[N, p/s, p/s, C]``.

    ``hr`` must already be cropped to a multiple of ``scale`` and ``lr`` be its ``1/scale``
    version (``[H/s, W/s, C]``).  The filter looks at the HR label only, as the reference.
    """
    if patch_size % scale:
        raise ValueError(f"patch size {patch_size} is not a multiple of the scale {scale}")
    if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
        raise ValueError(f"{name}: LR shape {lr.shape} is not HR shape {hr.shape} / {scale}")
    check_patch_fits(hr.shape, patch_size, name)
    origins = patch_origins(hr.shape[0], hr.shape[1], patch_size, stride)
    labels = cut_patches(hr, origins, patch_size)
    keep = passes_gradient_filter(labels, threshold)
    lr_patches = cut_patches(lr, origins[keep] // scale, patch_size // scale)
    return labels[keep], lr_patches


def augment(patches: np.ndarray, mode: int) -> np.ndarray:
    """Flip/rotation ``mode`` (0..7, the reference's numbering) of patches ``[N, p, p, C]``.

    Mode ``m`` rotates by ``(m // 2) * 90`` degrees counter-clockwise (``np.rot90``) and, for odd
    ``m``, then flips upside down (``np.flipud``), as ``augmentation`` in MainSR.
    """
    if not 0 <= mode < NUM_AUGMENTATIONS:
        raise ValueError(f"augmentation mode must be in 0..7, got {mode}")
    out = np.rot90(patches, mode // 2, axes=(1, 2))
    if mode % 2:
        out = np.flip(out, axis=1)
    return out


def reference_order(counts: Sequence[int], augmentations: int = NUM_AUGMENTATIONS
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """The reference's pre-shuffle order of augmented patches.

    ``counts[n]`` is the number of kept patches of image ``n``; kept patches are numbered
    consecutively over all images.  Returns ``(patch_index, mode)``, two int64 arrays of length
    ``augmentations * sum(counts)``: image by image, mode by mode, patch by patch.
    """
    patch_index: List[np.ndarray] = []
    modes: List[np.ndarray] = []
    start = 0
    for count in counts:
        patch_index.append(np.tile(np.arange(start, start + count), augmentations))
        modes.append(np.repeat(np.arange(augmentations), count))
        start += count
    if not patch_index:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (np.concatenate(patch_index).astype(np.int64), np.concatenate(modes).astype(np.int64))


def shuffled_order(counts: Sequence[int], rng: RandomGenerator,
                   augmentations: int = NUM_AUGMENTATIONS) -> Tuple[np.ndarray, np.ndarray]:
    """``reference_order`` shuffled by ``rng.permutation``.

    With ``np.random.RandomState(s)`` this is the order ``np.random.seed(s); np.random.shuffle``
    gives the reference's list; with a ``np.random.Generator`` it is that generator's permutation.
    """
    patch_index, modes = reference_order(counts, augmentations)
    permutation = rng.permutation(len(patch_index))
    return patch_index[permutation], modes[permutation]


def gather_augmented(patches: np.ndarray, patch_index: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """``augment(patches[patch_index[k]], modes[k])`` for every ``k``, as one array ``[K, p, p, C]``."""
    out = np.empty((len(patch_index),) + patches.shape[1:], dtype=patches.dtype)
    for mode in np.unique(modes):
        where = np.nonzero(modes == mode)[0]
        out[where] = augment(patches[patch_index[where]], int(mode))
    return out
