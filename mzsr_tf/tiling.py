"""Exact tiling of the network's loss gradient and forward pass, for images of any size in bounded memory.

Every output pixel of the network (``depth`` 3x3 convolutions, zero ``SAME`` padding, plus the input)
depends only on the input within ``depth`` pixels of it. Cut an image into tiles, give each tile a halo
of ``depth`` pixels (clipped where the tile meets the image border, so the zero padding there is the
whole image's), run the network on the tile with its halo and keep the tile's interior: those pixels,
and every activation they depend on, are exactly the whole-image ones.  So

- the forward pass is the tiles' interiors put side by side (``Tiler.forward``);
- the L1 loss of the whole image is a sum over pixels, and its gradient is the sum of the tiles'
  gradients of their interiors' sums (``Tiler.loss_and_gradients``); an SGD step on it is the
  whole-image step up to float rounding (the sums are added in another order).

The cubic up-scaling that makes the network's input is local too (4 taps at an integer coordinate
shift): ``Tiler.forward`` up-scales each tile's LR crop with a halo of ``LR_HALO`` LR pixels, so the
ILR of the whole output never exists at once.  A crop's grid matches the whole image's when the crop
starts on a multiple of the scale's denominator ``q`` (scale ``p / q`` in lowest terms): tiles, halos
and their origins are multiples of ``q`` (``lr_grid``).

Boxes are ``(top, bottom, left, right)`` half-open pixel ranges.  Images are float32 HWC in [0, 1].
What to adapt on and the SGD loop itself are the meta-test's (``mzsr_tf.meta_test``) and
``mzsr_tf.adaptation``'s business: this module only computes the loss, the gradients and the output.
"""
from __future__ import annotations

import dataclasses
import fractions
import math
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mzsr_tf.config import DEFAULT_MAX_MEMORY, MIN_TILE
from mzsr_tf.imresize import tf_imresize
from mzsr_tf.inner import loss_and_gradients
from mzsr_tf.metrics import to_uint8

Box = Tuple[int, int, int, int]
"""``(top, bottom, left, right)``: rows ``top:bottom`` and columns ``left:right``."""

LR_HALO = 3
"""LR pixels of context the cubic up-scaling needs beyond a tile (its 4-tap kernel reaches 2 pixels
from the mapped coordinate, plus one for the half-pixel offset of the grid)."""

FORWARD_TILE_SCALE = 2
"""A forward tile's side, in output pixels, is this many times the gradient tile's side. The forward pass holds
about 560 B per output pixel against about 7,300 B per pixel of a gradient tile, so 4 times the pixels fit in
about a third of a gradient tile's memory, and the halo's share of the work falls from 16% (a 352-pixel output
tile with its 14-pixel halo) to 8%."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after each tile."""


class TilingError(ValueError):
    """A tile size that cannot work (smaller than its halo, or not on the scale's grid)."""


def lr_grid(scale: float) -> int:
    """``q`` of the scale ``p / q`` in lowest terms (1 for an integer scale): LR crops that start on a
    multiple of ``q`` up-scale on the whole image's output grid (output offset ``p``)."""
    fraction = fractions.Fraction(scale).limit_denominator(1000)
    if abs(float(fraction) - scale) > 1e-9:
        raise TilingError(f"scale {scale} is not a fraction p/q with q <= 1000: tiling needs one")
    return fraction.denominator


def tile_boxes(height: int, width: int, tile: int) -> List[Box]:
    """The tiles of an ``height x width`` image, row by row: ``tile x tile`` (smaller at the bottom and right)."""
    if tile < 1:
        raise TilingError(f"tile must be positive, got {tile}")
    return [(top, min(top + tile, height), left, min(left + tile, width))
            for top in range(0, height, tile) for left in range(0, width, tile)]


def with_halo(box: Box, halo: int, height: int, width: int) -> Box:
    """``box`` grown by ``halo`` on every side, clipped to the image."""
    top, bottom, left, right = box
    return max(top - halo, 0), min(bottom + halo, height), max(left - halo, 0), min(right + halo, width)


def _inner_slices(box: Box, crop: Box) -> Tuple[slice, slice]:
    """The slices of ``box`` inside an array holding ``crop``."""
    return (slice(box[0] - crop[0], box[1] - crop[0]), slice(box[2] - crop[2], box[3] - crop[2]))


class Tiler:
    """The network's forward pass and its L1 loss gradient, tile by tile.

    Args:
      net: ``net(params, x)``: ``[1, H, W, C]`` -> ``[1, H, W, C]`` float32 (``mzsr_tf.model.forward``).
      depth: the number of 3x3 convolutions of ``net`` (its receptive radius in pixels).
      tile: the tile side, in pixels of the image tiled (the son's ILR for the gradient, the input LR
        image for the forward pass).
      loss_scale: as ``mzsr_tf.inner.inner_step``'s (float16 gradients).
      progress: called with ``(tiles done, tiles)`` after each tile.

    The per-tile functions are ``tf.function``s with an input signature of dynamic image shapes, traced once
    for all tiles (and once per scale for the forward pass).
    """

    def __init__(self, net: Callable, depth: int, tile: int, loss_scale: float = 1.0,
                 progress: Optional[Progress] = None):
        if tile < 1:
            raise TilingError(f"tile must be positive, got {tile}")
        self.net = net
        self.halo = depth
        self.tile = tile
        self.loss_scale = loss_scale
        self.progress = progress
        self._tile_gradients = None   # traced once for every tile shape (see _traced)
        self._tile_forwards = {}      # one per scale

    @staticmethod
    def _signature(params: Sequence[tf.Tensor], image_rank_specs: Sequence[tf.TensorSpec]):
        """An input signature: the parameters' own shapes, then images and indices of any size."""
        return [[tf.TensorSpec(p.shape, tf.float32) for p in params]] + list(image_rank_specs)

    def _traced_gradients(self, params):
        if self._tile_gradients is None:
            image = tf.TensorSpec([None, None, None], tf.float32)
            self._tile_gradients = tf.function(
                self._gradients_of_tile, autograph=False, input_signature=self._signature(
                    params, [image, image, tf.TensorSpec([4], tf.int32), tf.TensorSpec([], tf.float32)]))
        return self._tile_gradients

    def _traced_forward(self, params, scale: float):
        if scale not in self._tile_forwards:
            image = tf.TensorSpec([None, None, None], tf.float32)
            self._tile_forwards[scale] = tf.function(
                lambda params, lr_crop, out_hw, inner: self._forward_of_tile(params, lr_crop, out_hw, inner, scale),
                autograph=False, input_signature=self._signature(
                    params, [image, tf.TensorSpec([2], tf.int32), tf.TensorSpec([4], tf.int32)]))
        return self._tile_forwards[scale]

    # ------------------------------------------------------------------ the gradient

    def _gradients_of_tile(self, params, ilr_crop, label, inner, count):
        """The sum over the interior ``inner`` (start/stop rows, cols in the crop) of ``|label - net|``
        divided by ``count`` (the whole image's element count), and its gradients."""
        params = [tf.convert_to_tensor(p) for p in params]
        with tf.GradientTape() as tape:
            tape.watch(params)
            out = self.net(params, ilr_crop[None])[0]
            out = out[inner[0]:inner[1], inner[2]:inner[3]]
            loss = tf.reduce_sum(tf.abs(label - out)) / count
            scaled = loss * self.loss_scale if self.loss_scale != 1.0 else loss
        grads = tape.gradient(scaled, params)
        if self.loss_scale != 1.0:
            grads = [g / self.loss_scale for g in grads]
        return loss, grads

    def loss_and_gradients(self, params: Sequence[tf.Tensor], son_ilr: tf.Tensor, father: tf.Tensor
                           ) -> Tuple[tf.Tensor, List[tf.Tensor]]:
        """``L1(father, net(params, son_ilr))`` (the mean over all elements) and its gradients.

        ``son_ilr``, ``father``: ``[H, W, C]`` float32.  Equals ``mzsr_tf.inner``'s whole-image loss and
        gradients up to float rounding.
        """
        height, width = int(son_ilr.shape[0]), int(son_ilr.shape[1])
        count = tf.constant(float(np.prod(son_ilr.shape)), tf.float32)
        boxes = tile_boxes(height, width, self.tile)
        total, grads = tf.constant(0.0), None
        for done, box in enumerate(boxes, 1):
            crop = with_halo(box, self.halo, height, width)
            rows, cols = _inner_slices(box, crop)
            loss, tile_grads = self._traced_gradients(params)(
                list(params), son_ilr[crop[0]:crop[1], crop[2]:crop[3]],
                father[box[0]:box[1], box[2]:box[3]],
                tf.constant([rows.start, rows.stop, cols.start, cols.stop], tf.int32), count)
            total = total + loss
            grads = tile_grads if grads is None else [a + b for a, b in zip(grads, tile_grads)]
            if self.progress is not None:
                self.progress(done, len(boxes))
        return total, grads

    # ------------------------------------------------------------------ the forward pass

    def _forward_of_tile(self, params, lr_crop, out_hw, inner, scale):
        ilr = tf_imresize(lr_crop, scale, output_shape=out_hw, kernel="cubic")
        out = self.net([tf.convert_to_tensor(p) for p in params], ilr[None])[0]
        return tf.clip_by_value(out[inner[0]:inner[1], inner[2]:inner[3]], 0.0, 1.0)

    def forward(self, params: Sequence[tf.Tensor], lr: np.ndarray, scale: float,
                output_hw: Tuple[int, int], dtype=np.float32) -> np.ndarray:
        """``clip(net(params, cubic(lr, scale, output_hw)), 0, 1)`` as float32 ``[H', W', C]``, tile by tile;
        with ``dtype=np.uint8`` its ``metrics.to_uint8``, each tile quantized as it is made.

        ``lr`` is the input (float32 HWC); the tiles are ``tile / scale`` LR pixels square (about ``tile`` output
        pixels), rounded down to a multiple of ``lr_grid(scale)``.  The output's rows ``[p r0 / q, p r1 / q)`` come from the tile of LR
        rows ``[r0, r1)`` (the last tile also makes any rows ``output_hw`` has beyond ``scale`` times the
        input, as the whole image's resize does).
        """
        height, width = lr.shape[:2]
        out_h, out_w = int(output_hw[0]), int(output_hw[1])
        q = lr_grid(scale)
        # a forward tile of FORWARD_TILE_SCALE * tile / scale LR pixels makes FORWARD_TILE_SCALE * tile output
        # pixels a side (the forward pass keeps no activations for a backward pass)
        tile = max(q, int(FORWARD_TILE_SCALE * self.tile / scale) // q * q)
        # LR halo: the cubic taps plus the network's receptive radius in LR pixels, on the grid
        halo = q * math.ceil((LR_HALO + math.ceil(self.halo / scale)) / q)
        ratio = fractions.Fraction(scale).limit_denominator(1000)

        def out_at(lr_index: int, size: int, out_size: int) -> int:
            return out_size if lr_index >= size else min(int(lr_index * ratio), out_size)

        def to_output(lr_box: Box) -> Box:
            top, bottom, left, right = lr_box
            return (out_at(top, height, out_h), out_at(bottom, height, out_h),
                    out_at(left, width, out_w), out_at(right, width, out_w))

        if dtype not in (np.float32, np.uint8):
            raise ValueError(f"dtype must be np.float32 or np.uint8, got {dtype}")
        sr = np.empty((out_h, out_w, lr.shape[2]), dtype)
        boxes = tile_boxes(height, width, tile)
        for done, box in enumerate(boxes, 1):
            crop = with_halo(box, halo, height, width)
            crop_out, box_out = to_output(crop), to_output(box)
            rows, cols = _inner_slices(box_out, crop_out)
            tile_sr = self._traced_forward(params, float(scale))(
                list(params), tf.constant(lr[crop[0]:crop[1], crop[2]:crop[3]], tf.float32),
                tf.constant([crop_out[1] - crop_out[0], crop_out[3] - crop_out[2]], tf.int32),
                tf.constant([rows.start, rows.stop, cols.start, cols.stop], tf.int32))
            tile_sr = tile_sr.numpy()
            sr[box_out[0]:box_out[1], box_out[2]:box_out[3]] = to_uint8(tile_sr) if dtype == np.uint8 else tile_sr
            if self.progress is not None:
                self.progress(done, len(boxes))
        return sr


# --------------------------------------------------------------------------- choosing the tile

@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """Peak resident memory of a meta-test process, in bytes, from pixel counts.

    Measured on a 2-core CPU with TensorFlow 2.21 by peak RSS (``ru_maxrss``) of whole processes: the process
    with TensorFlow and the network loaded (``base``, 0.72 GB), a whole-image meta-test at x2 (6.3 KB per input
    pixel over 0.07-0.8 MP inputs, split here between input and output pixels), one gradient tile (7.0-7.3 KB per
    pixel of the tile with its halo, 256- and 512-pixel tiles), one forward tile (540 B per output pixel) and the
    son's making at 12 MP (36 B per input pixel beyond the input itself). The tiled mode's peak is the largest
    of its phases: making the son; a gradient step (the input and the son's ILR kept, one tile's activations);
    a forward pass (also the SR image of each recorded step, float32 or uint8); writing the PNG (an encoder's
    copy). The phases are separate because the meta-test hands freed memory back between them
    (``process_memory.release_free_memory``). ``tiled_overhead`` covers the traces of the tile functions and what
    the model leaves out; it was raised from 0.2 to 0.35 GB after a 1024x816 input with its GT peaked at 2.27 GB
    under a 2 GiB limit. A 4000x3000 input (one uint8 SR image) predicted at 2.14 GB peaked at 1.85 GB.
    """

    base: float = 0.75e9
    whole_overhead: float = 0.1e9
    whole_per_input_pixel: float = 2300.0
    whole_per_output_pixel: float = 1000.0
    tiled_overhead: float = 0.35e9
    input_bytes: float = 24.0        # the float32 input and the son's ILR
    son_bytes: float = 36.0          # making the son, per input pixel, beyond the input
    output_bytes: float = 12.0       # one float32 RGB output pixel (a quarter of it as uint8)
    train_per_tile_pixel: float = 7300.0
    forward_per_tile_pixel: float = 560.0

    def whole(self, input_pixels: int, output_pixels: int) -> float:
        return (self.base + self.whole_overhead + self.whole_per_input_pixel * input_pixels
                + self.whole_per_output_pixel * output_pixels)

    def tiled(self, input_pixels: int, output_pixels: int, records: int, tile: int, halo: int,
              scale: float, quantized: bool = False) -> float:
        kept = self.input_bytes * input_pixels
        outputs = (self.output_bytes / 4 if quantized else self.output_bytes) * output_pixels * records
        forward_side = FORWARD_TILE_SCALE * tile + 2 * scale * (LR_HALO + math.ceil(halo / scale))
        phases = (self.son_bytes * input_pixels + kept,
                  kept + self.train_per_tile_pixel * (tile + 2 * halo) ** 2,
                  kept + outputs + self.forward_per_tile_pixel * forward_side ** 2,
                  kept + outputs + 3.0 * output_pixels)
        return self.base + self.tiled_overhead + max(phases)


@dataclasses.dataclass
class TilePolicy:
    """How a meta-test tiles an image (``scripts/main.py --tile`` and ``--max-memory``).

    Attributes:
      tile: ``0`` the whole image at once (one graph, as the reference); ``N > 0`` tiles of ``N``
        input pixels; ``None`` (``auto``) the whole image if ``memory`` says it fits in ``max_memory``,
        else the largest tile that does.
      max_memory: the peak resident memory ``auto`` aims under, in bytes.
      progress: ``progress(what, step, done, total)`` after each tile (``what``: ``'step'`` for the
        gradient tiles of adaptation step ``step``, ``'SR'`` for the forward tiles after ``step``
        steps); ``None`` for silence.
      memory: the memory model ``auto`` uses.
    """

    tile: Optional[int] = 0
    max_memory: float = DEFAULT_MAX_MEMORY
    progress: Optional[Callable[[str, int, int, int], None]] = None
    memory: MemoryModel = MemoryModel()

    def __post_init__(self):
        if self.tile is not None and self.tile < 0:
            raise TilingError(f"tile must be 0 (the whole image), positive or auto, got {self.tile}")
        if self.max_memory <= 0:
            raise TilingError(f"max_memory must be positive, got {self.max_memory}")

    def tile_for(self, lr_shape: Sequence[int], scale: float, depth: int, records: int,
                 quantized: bool = False) -> int:
        """The tile side for an input of ``lr_shape`` (0: the whole image at once), keeping ``records``
        SR images (float32, or uint8 when ``quantized``: ``MetaTester.adapt(quantized=True)``).

        A forced tile smaller than ``MIN_TILE`` or twice the halo (``depth``) raises ``TilingError``; a
        tile as large as the image runs the whole image at once.  ``auto`` raises ``TilingError`` when
        not even a ``MIN_TILE`` tile fits under ``max_memory``.
        """
        height, width = int(lr_shape[0]), int(lr_shape[1])
        q = lr_grid(scale)
        smallest = max(MIN_TILE, 2 * depth, q)
        if self.tile is not None:
            if self.tile == 0 or self.tile >= max(height, width):
                return 0
            if self.tile < smallest:
                raise TilingError(f"tile {self.tile} is smaller than {smallest} pixels (the network's halo is "
                                  f"{depth} pixels on each side)")
            return self.tile
        input_pixels = height * width
        output_pixels = int(math.ceil(height * scale) * math.ceil(width * scale))
        if self.memory.whole(input_pixels, output_pixels) <= self.max_memory:
            return 0

        def fits(tile: int) -> bool:
            return self.memory.tiled(input_pixels, output_pixels, records, tile, depth, scale,
                                     quantized) <= self.max_memory

        if not fits(smallest):
            needed = self.memory.tiled(input_pixels, output_pixels, records, smallest, depth, scale, quantized)
            raise TilingError(f"max memory {self.max_memory / 1e9:.2f} GB is too small for a {height}x{width} "
                              f"input even with {smallest}-pixel tiles (about {needed / 1e9:.2f} GB needed)")
        tile = smallest
        while tile * 2 <= max(height, width) and fits(tile * 2):
            tile *= 2
        step = max(q, 8)
        while tile + step < max(height, width) and fits(tile + step):
            tile += step
        return tile // q * q


# --------------------------------------------------------------------------- fast mode: random crops

def random_crops(son_ilr: tf.Tensor, father: tf.Tensor, count: int, size: int, seed: Sequence[int]
                 ) -> Tuple[tf.Tensor, tf.Tensor]:
    """``count`` random ``size x size`` crops at the same places of ``son_ilr`` and ``father`` (``[H, W, C]``),
    as ``[count, size, size, C]`` each; the places are drawn from the stateless ``seed`` (``[2]`` ints), so
    the same seed gives the same crops.  A side shorter than ``size`` is taken whole."""
    height, width = int(son_ilr.shape[0]), int(son_ilr.shape[1])
    rows, cols = min(size, height), min(size, width)
    tops = tf.random.stateless_uniform([count], seed, 0, height - rows + 1, dtype=tf.int32)
    lefts = tf.random.stateless_uniform([count], tf.random.experimental.stateless_fold_in(seed, 1), 0,
                                        width - cols + 1, dtype=tf.int32)
    places = list(zip(tops.numpy(), lefts.numpy()))
    inputs = tf.stack([son_ilr[t:t + rows, l:l + cols] for t, l in places])
    labels = tf.stack([father[t:t + rows, l:l + cols] for t, l in places])
    return inputs, labels


class CropGradients:
    """The fast mode's loss and gradients: ``L1(father, net(son_ilr))`` on ``count`` random crops, fresh at
    every call (the ``n``-th call uses the seed ``(seed, n)``), as ZSSR trains; the cost of a step does not
    depend on the image's size.  Not the paper's step: the crops' borders see zeros, and the loss is a sample."""

    def __init__(self, net: Callable, count: int, size: int, seed: Sequence[int], loss_scale: float = 1.0):
        self.count, self.size, self.seed = count, size, tuple(int(s) for s in seed)
        self.calls = 0
        self._gradients = tf.function(
            lambda params, inputs, labels: loss_and_gradients(net, params, inputs, labels, loss_scale),
            autograph=False, reduce_retracing=True)

    def __call__(self, params: Sequence[tf.Tensor], son_ilr: tf.Tensor, father: tf.Tensor):
        seed = tf.random.experimental.stateless_fold_in(tf.constant(self.seed, tf.int64), self.calls)
        self.calls += 1
        inputs, labels = random_crops(son_ilr, father, self.count, self.size, seed)
        return self._gradients(list(params), inputs, labels)

