"""Test-time self-ensemble (an option beyond the paper: ``--self-ensemble``).

The input is turned into its eight flips/rotations (the dihedral group of the square: rotations by
0, 90, 180, 270 degrees, each with and without a left-right flip); **each is adapted on its own**, with
its blur kernel turned the same way (the son of a rotated image is made by the rotated kernel), and the
eight SR images are turned back and averaged.

Why each is adapted, rather than adapting once and applying the adapted network to the eight inputs:
the adaptation learns the input's own blur, and an anisotropic kernel rotates with the image.  A
network adapted to the upright image applied to a rotated one undoes a blur of the wrong orientation;
adapting each transformed input with its transformed kernel keeps every member of the ensemble a
correct meta-test.  The cost is eight adaptations: about 8x the seconds of a plain meta-test.

Direct subsampling keeps the HR pixels ``0, s, 2s, ...`` (the top-left convention of
``mzsr_tf.degradation``), which is not symmetric: in a frame where an axis runs backwards, the input's
pixels sit ``s - 1`` HR pixels further along that axis than the network assumes, so the network's
output there is shifted by ``s - 1`` pixels.  ``sampling_shift`` gives that shift per transform (none
for bicubic subsampling, which is centred), and each member's output is moved back by it (edge rows
repeated) before it is turned back; without this the eight outputs would not line up (on Set5 g^d_2.0
the unaligned average lost about 4 dB).

``transform(image, index)`` / ``inverse(image, index)`` are the eight maps (``index`` 0..7, 0 = the
identity) on ``[H, W, ...]`` arrays (images HWC, kernels 2-D); ``adapt_at_steps`` runs the ensemble
with a ``MetaTester`` and returns what ``MetaTester.adapt_at_steps`` returns.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional, Sequence, Tuple

import numpy as np

TRANSFORM_COUNT = 8


def _parts(index: int) -> Tuple[int, bool]:
    if not 0 <= index < TRANSFORM_COUNT:
        raise ValueError(f"self-ensemble transform index must be in 0..7, got {index}")
    return index % 4, index >= 4


def transform(image: np.ndarray, index: int) -> np.ndarray:
    """The ``index``-th flip/rotation of ``image`` (``[H, W, ...]``): left-right flip if ``index >= 4``,
    then ``index % 4`` counter-clockwise quarter turns (``np.rot90``)."""
    turns, flip = _parts(index)
    image = np.asarray(image)
    return np.rot90(image[:, ::-1] if flip else image, turns)


def inverse(image: np.ndarray, index: int) -> np.ndarray:
    """Undo ``transform(., index)``."""
    turns, flip = _parts(index)
    image = np.rot90(np.asarray(image), -turns)
    return image[:, ::-1] if flip else image


def transformed_shape(shape: Sequence[int], index: int) -> Tuple[int, int]:
    """``(H, W)`` of ``transform`` of an image of ``(H, W)``: swapped by an odd number of quarter turns."""
    turns, _ = _parts(index)
    return (shape[1], shape[0]) if turns % 2 else (shape[0], shape[1])


def sampling_shift(index: int, scale: float, ds_method: str) -> Tuple[int, int]:
    """``(rows, cols)`` by which a member's output, in its own (transformed) frame, lags the truth: ``s - 1``
    on each axis that runs backwards over the original image under direct subsampling, else 0."""
    if ds_method != "direct":
        return 0, 0
    grid_rows, grid_cols = np.mgrid[0:2, 0:2]
    rows, cols = transform(grid_rows, index), transform(grid_cols, index)
    lag = int(round(scale)) - 1
    down = (rows[1, 0] - rows[0, 0]) + (cols[1, 0] - cols[0, 0]) < 0   # moving down the frame goes backwards
    right = (rows[0, 1] - rows[0, 0]) + (cols[0, 1] - cols[0, 0]) < 0
    return (lag if down else 0), (lag if right else 0)


def _move_forward(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``image`` moved ``rows`` down and ``cols`` right, the first rows/columns repeated (shape kept)."""
    if not rows and not cols:
        return image
    height, width = image.shape[:2]
    padded = np.pad(image, ((rows, 0), (cols, 0)) + ((0, 0),) * (image.ndim - 2), mode="edge")
    return padded[:height, :width]


def adapt_at_steps(tester, lr: np.ndarray, kernel: Optional[np.ndarray], step_counts: Sequence[int],
                   output_shape: Tuple[int, int], seed: Tuple[int, int] = (0, 0)):
    """The self-ensemble of ``tester`` (a ``meta_test.MetaTester``) on ``lr`` (float32 HWC in [0, 1]) with
    ``kernel`` (2-D or None for bicubic): for each of the eight transforms, ``tester`` adapts afresh to
    the transformed input and kernel, its output is moved back by ``sampling_shift``; ``srs[n]`` is the mean of the eight results after ``n`` steps,
    turned back (float32 ``[*output_shape, 3]`` in [0, 1]); ``son_losses`` are the identity member's;
    ``seconds`` the whole ensemble's.  Transform ``t``'s son noise uses seed ``(seed[0], 8 * seed[1] + t)``.
    """
    start = time.perf_counter()
    sums = {}
    son_losses = None
    config = tester.config
    for index in range(TRANSFORM_COUNT):
        lag = sampling_shift(index, config.scale, config.ds_method)
        turned_kernel = None if kernel is None else np.ascontiguousarray(transform(kernel, index))
        run = tester.plain_adapt_at_steps(np.ascontiguousarray(transform(lr, index)), turned_kernel, step_counts,
                                          output_shape=transformed_shape(output_shape, index),
                                          seed=(seed[0], TRANSFORM_COUNT * seed[1] + index))
        for n, sr in run.srs.items():
            sums[n] = sums.get(n, 0.0) + inverse(_move_forward(sr, *lag), index).astype(np.float64)
        if index == 0:
            son_losses = run.son_losses
    srs = {n: (total / TRANSFORM_COUNT).astype(np.float32) for n, total in sums.items()}
    # the members' own result type (meta_test.MultiStepResult), so this module need not import meta_test back
    return dataclasses.replace(run, srs=srs, son_losses=son_losses, seconds=time.perf_counter() - start)
