"""The meta-test (the paper's Algorithm 2): of one image (``MetaTester``) and of a folder (``run_folder``).

For an LR image ``lr`` (float32 HWC in [0, 1]) with blur kernel ``k`` and scale ``s``:

1. the "son" is ``degrade(father, k, s)``: the LR image itself degraded once more (plus optional noise),
   where ``father`` is ``lr`` cropped at the bottom and right to a multiple of ``s`` (``father_shape``; the
   reference degrades the whole ``lr``, ``config.son_grid='reference'``); the son's cubic upscale to the
   father's shape is the training input, the father its label;
2. starting from the meta-trained weights, ``num_steps`` plain-SGD steps on the L1 loss, step ``i`` with
   learning rate ``config.inner_lr(i)`` (the loop is ``mzsr_tf.adaptation.sgd_loop``, every step
   ``mzsr_tf.inner.inner_step``);
3. the result is the adapted network applied to the cubic upscale of ``lr`` to the output shape
   (the modcropped GT's shape, or ``expected_sr_shape``: ``ceil(s * shape)``), clipped to [0, 1];
   optionally refined by back-projection.

All of it (son, steps, both forward passes) runs inside one ``tf.function`` whose input shapes are
unknown, so images of any size share one trace and no Python runs per step. Weights are never
modified: the steps produce new tensors from the starting weights, so every image starts afresh.

``run_folder`` is the reference's ``main.py`` test mode: it pairs the LR inputs with their GT images by
sorted order (as the reference does, but checks the pairing), takes each input's blur kernel from a
``mzsr_tf.kernels.KernelSource`` (one kernel file, none, or a folder of per-image kernels), adapts the
network afresh to each image, writes ``SAVE/NN/<name>.png`` (``NN`` = number of steps, two digits) and
``SAVE/NN/results.json``, and prints per-image lines and the reference's closing line
``[*] Average PSNR ** Initial: x, Final : y``.  Every input and kernel is read and checked before the
first adaptation (``load_inputs``), and the output folder probed, so a bad file stops the run with a
one-line ``MetaTestError`` (or ``KernelError``, ``atomic.OutputPathError``) naming it, before anything
is written; outputs are written atomically (``mzsr_tf.atomic``), so a failure mid-run (a full disk)
leaves complete files only.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import tensorflow as tf

from mzsr_tf import atomic, degradation, inner, metrics, self_ensemble
from mzsr_tf.adaptation import sgd_loop, sgd_steps
from mzsr_tf.config import DEFAULT_SON_GRID, SON_GRIDS, AdaptationConfig
from mzsr_tf.data.images import list_images, read_image
from mzsr_tf.imresize import fix_scale_and_size, imresize, tf_imresize
from mzsr_tf.kernels import ImageKernel, KernelSource
from mzsr_tf.model import compute_dtype, forward
from mzsr_tf.process_memory import peak_memory_bytes, release_free_memory
from mzsr_tf.tiling import CropGradients, TilePolicy, Tiler


class MetaTestError(ValueError):
    """A bad input to the meta-test; the message names the file and the problem."""


MIN_SON_SIDE = 4
"""The son (the input down-scaled once more) must be at least this many pixels on each side: it is the
adaptation's only training input, and below 4x4 it holds no structure to learn from (the network's
3x3 convolutions would see mostly padding). At x2 an input needs 7 pixels or more per side, at x4 13."""


CROP_SEED_SALT = 1 << 20
"""Added to the second entry of an image's seed for the fast mode's crops, so they are drawn apart from the son's
noise (which uses the seed itself)."""


def refines_float_sr(config: AdaptationConfig) -> bool:
    """Whether self-ensemble or back-projection work on the float SR images after the network (so that
    ``MetaTester.adapt(quantized=True)`` rounds them only at the end, and keeps floats meanwhile)."""
    return bool(config.self_ensemble or config.back_projection)


def expected_sr_shape(lr_shape, scale: float) -> Tuple[int, int]:
    """The SR image's ``(H, W)`` when no GT gives it: ``ceil(scale * (H, W))`` of ``lr_shape``.

    This is ``imresize``'s output size for ``scale`` (the reference's rule).
    """
    return fix_scale_and_size(lr_shape[:2], scale=scale)[1]


# --------------------------------------------------------------------------- one image

@dataclasses.dataclass
class AdaptationResult:
    """What one meta-test produced.

    ``sr`` and ``initial_sr`` are float32 HWC in [0, 1] (the network's output after and before the
    adaptation, clipped; ``initial_sr`` is ``None`` when ``adapt(keep_initial=False)``), or uint8 HWC (their
    ``metrics.to_uint8``) when ``adapt(quantized=True)``; ``son_losses[i]`` is
    the L1 loss on the son before step ``i``; ``seconds`` is the wall time of the whole adaptation including
    the forward passes.
    """

    sr: np.ndarray
    initial_sr: Optional[np.ndarray]
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

    Example::

        model = MZSRNet()
        load_weights(model, "checkpoints/direct_x2")
        tester = MetaTester(model.trainable_variables, preset_for_model(0).adaptation_config(num_steps=10))
        lr = read_rgb("dataset/demo/Input/chelsea.png")          # float32 [H, W, 3] in [0, 1]
        result = tester.adapt(lr, load_kernel("dataset/demo/kernel.mat"))
        result.sr, result.son_losses                             # [2H, 2W, 3] in [0, 1]; [10]
    """

    def __init__(self, params: Sequence[tf.Variable], config: AdaptationConfig,
                 tiling: Optional[TilePolicy] = None):
        self.params = list(params)
        self.config = config
        self.tiling = tiling or TilePolicy()
        self.last_tile = 0  # the tile side the last image ran with (0: the whole image at once)
        self._tilers: Dict[Tuple[int, str], Tiler] = {}
        image = tf.TensorSpec([None, None, None], tf.float32)
        shape = tf.TensorSpec([2], tf.int32)
        rates = tf.TensorSpec([None], tf.float32)
        record = tf.TensorSpec([None], tf.bool)
        seed = tf.TensorSpec([2], tf.int32)
        # autograph=False: the graph is plain TF ops (an explicit tf.while_loop), which keeps the
        # one-off tracing cost low (autograph would transpile every library function it calls).
        self._run_with_kernel = tf.function(
            self._run, autograph=False,
            input_signature=[image, tf.TensorSpec([None, None], tf.float32), shape, shape, rates, record, seed])
        self._run_bicubic = tf.function(
            lambda lr, father_hw, out_hw, rate_list, record_at, noise_seed: self._run(
                lr, None, father_hw, out_hw, rate_list, record_at, noise_seed),
            autograph=False, input_signature=[image, shape, shape, rates, record, seed])
        self._son_with_kernel = tf.function(
            self._son_input, autograph=False,
            input_signature=[image, tf.TensorSpec([None, None], tf.float32), shape, seed])
        self._son_bicubic = tf.function(
            lambda lr, father_hw, noise_seed: self._son_input(lr, None, father_hw, noise_seed),
            autograph=False, input_signature=[image, shape, seed])

    def _son_input(self, lr, kernel, father_hw, noise_seed):
        """``(son_ilr, father)``, each ``[H', W', C]``: the father is ``lr[:father_hw[0], :father_hw[1]]``
        (``father_shape``), the son its degradation by ``kernel`` (``None``: bicubic), ``son_ilr`` the son's
        up-scaling back to the father's shape: the adaptation's input and label."""
        cfg = self.config
        down_kernel = degradation.CUBIC if kernel is None else kernel
        father = lr[:father_hw[0], :father_hw[1]]
        son = degradation.tf_degrade(father, down_kernel, cfg.scale, ds_method=cfg.ds_method,
                                     noise_std=cfg.noise_std, seed=noise_seed)
        son_ilr = tf_imresize(son, cfg.scale, output_shape=tf.shape(father)[:2], kernel=cfg.upscale_method)
        return son_ilr, father

    def _run(self, lr, kernel, father_hw, out_hw, rates, record, noise_seed):
        """The graph: son, ``len(rates)`` steps, and the SR image after ``n`` steps wherever ``record[n]``.

        The son is made from ``lr[:father_hw[0], :father_hw[1]]`` (the "HR father", ``father_shape``), the
        label of every step; the SR images are of the whole ``lr``.
        Returns ``(srs [count(record), H, W, C], son_losses [len(rates)])``.
        """
        cfg = self.config
        son_ilr, father = self._son_input(lr, kernel, father_hw, noise_seed)
        son_ilr = son_ilr[None]
        lr_ilr = tf_imresize(lr, cfg.scale, output_shape=out_hw, kernel=cfg.upscale_method)[None]
        net = functools.partial(forward, compute_dtype=compute_dtype(cfg.precision))
        # float16 gradients of a mean L1 loss underflow without scaling; bfloat16 has float32's range
        loss_scale = inner.inner_loss_scale(cfg.precision)
        slots = tf.cumsum(tf.cast(record, tf.int32)) - 1  # where the SR after n steps goes

        def keep_sr(n, params, srs):
            return tf.cond(record[n],
                           lambda: srs.write(slots[n], tf.clip_by_value(net(params, lr_ilr)[0], 0.0, 1.0)),
                           lambda: srs)

        start = [tf.convert_to_tensor(p) for p in self.params]
        srs = keep_sr(0, start, tf.TensorArray(tf.float32, size=slots[-1] + 1))
        _, losses, srs = sgd_loop(net, start, son_ilr, father[None], rates, loss_scale=loss_scale,
                                  state=srs, after_step=keep_sr)
        return srs.stack(), losses

    def _execute(self, lr, kernel, step_counts, output_shape, seed, quantized=False):
        """Run ``max(step_counts)`` steps; ``({n: SR after n steps}, son_losses, seconds)``.

        The whole image in one graph, or tile by tile (``mzsr_tf.tiling``) when ``self.tiling`` gives
        this image a tile smaller than it; both make the same steps up to float rounding. ``quantized``:
        the SR images as uint8 (``metrics.to_uint8``; tile by tile when tiled, a quarter of the memory).
        """
        cfg = self.config
        check_son_size(lr.shape, cfg.scale, "given to MetaTester.adapt", cfg.son_grid, cfg.ds_method)
        father_hw = father_shape(lr.shape, cfg.scale, cfg.son_grid, cfg.ds_method)
        counts = sorted(set(int(n) for n in step_counts))
        if not counts or counts[0] < 0:
            raise ValueError(f"step_counts must be non-negative integers, got {list(step_counts)}")
        if output_shape is None:
            output_shape = expected_sr_shape(lr.shape, cfg.scale)
        self.last_tile = self.tiling.tile_for(lr.shape, cfg.scale, len(self.params) // 2, len(counts), quantized)
        start = time.perf_counter()
        if self.last_tile or cfg.son_crops:
            srs, losses = self._execute_tiled(lr, kernel, counts, output_shape, seed, father_hw,
                                              self.last_tile or max(lr.shape[:2]), quantized)
            return srs, losses, time.perf_counter() - start
        record = np.zeros(counts[-1] + 1, bool)
        record[counts] = True
        args = (tf.constant(lr, tf.float32),)
        if kernel is not None:
            args += (tf.constant(kernel, tf.float32),)
        args += (tf.constant(father_hw, tf.int32), tf.constant(output_shape, tf.int32),
                 tf.constant(cfg.inner_lr.rates(counts[-1]), tf.float32),
                 tf.constant(record), tf.constant(seed, tf.int32))
        run = self._run_bicubic if kernel is None else self._run_with_kernel
        srs, losses = run(*args)
        srs = dict(zip(counts, (metrics.to_uint8(sr) if quantized else sr for sr in srs.numpy())))
        return srs, losses.numpy(), time.perf_counter() - start

    def _tiler(self, tile: int) -> Tiler:
        """The ``Tiler`` of ``tile`` at the current precision (kept: its functions are traced once)."""
        cfg = self.config
        key = (tile, cfg.precision)
        if key not in self._tilers:
            net = functools.partial(forward, compute_dtype=compute_dtype(cfg.precision))
            self._tilers[key] = Tiler(net, len(self.params) // 2, tile,
                                      loss_scale=inner.inner_loss_scale(cfg.precision))
        return self._tilers[key]

    def _execute_tiled(self, lr, kernel, counts, output_shape, seed, father_hw, tile, quantized):
        """``_execute``'s steps tile by tile: the son whole (it is the input's size), then each step's
        loss and gradients (of the whole son, or with ``config.son_crops`` of random crops of it) and each
        recorded SR image tile by tile, reporting to ``self.tiling.progress``. The C heap's free memory is
        handed back after the son and after the steps (``process_memory.release_free_memory``), so the
        transients of one phase do not stay resident beside the next."""
        cfg = self.config
        lr_tensor = tf.constant(lr, tf.float32)
        if kernel is None:
            son_ilr, father = self._son_bicubic(lr_tensor, tf.constant(father_hw, tf.int32),
                                                tf.constant(seed, tf.int32))
        else:
            son_ilr, father = self._son_with_kernel(lr_tensor, tf.constant(kernel, tf.float32),
                                                    tf.constant(father_hw, tf.int32), tf.constant(seed, tf.int32))
        # the father is the top-left corner of the input: a view of it, not the graph's copy
        del lr_tensor, father
        release_free_memory()
        father = lr[:father_hw[0], :father_hw[1]]
        tiler = self._tiler(tile)
        report = self.tiling.progress

        def after_step(step, params):  # step 0: the starting weights
            if step in counts:
                tiler.progress = report and functools.partial(report, "SR", step)
                if step == counts[-1] and step:
                    release_free_memory()  # the last step's tile activations
                srs[step] = tiler.forward(params, lr, cfg.scale, output_shape,
                                          np.uint8 if quantized else np.float32)
            tiler.progress = report and functools.partial(report, "step", step + 1)

        srs = {}
        after_step(0, [tf.convert_to_tensor(p) for p in self.params])
        if cfg.son_crops:
            crops = CropGradients(tiler.net, cfg.son_crops, cfg.son_crop_size, (seed[0], seed[1] + CROP_SEED_SALT),
                                  tiler.loss_scale)

            def gradients(params):
                loss_and_grads = crops(params, son_ilr, father)
                if tiler.progress is not None:
                    tiler.progress(1, 1)
                return loss_and_grads
        else:
            def gradients(params):
                return tiler.loss_and_gradients(params, son_ilr, father)
        _, losses = sgd_steps(gradients, self.params, cfg.inner_lr.rates(counts[-1]), after_step)
        return srs, np.asarray(losses, np.float32)

    def _back_project(self, sr, lr, kernel):
        cfg = self.config
        down_kernel = degradation.CUBIC if kernel is None else kernel
        for _ in range(cfg.back_projection_iters):
            sr = degradation.back_projection(sr, lr, down_kernel, cfg.upscale_method, cfg.scale, cfg.ds_method)
        return np.asarray(sr, np.float32)

    def adapt(self, lr: np.ndarray, kernel: Optional[np.ndarray] = None,
              output_shape: Optional[Tuple[int, int]] = None, seed: Tuple[int, int] = (0, 0),
              keep_initial: bool = True, quantized: bool = False) -> AdaptationResult:
        """Adapt to ``lr`` (float32 HWC in [0, 1]) blurred by ``kernel`` (2-D, or None for bicubic).

        ``output_shape`` is the SR image's ``(H, W)``; by default ``expected_sr_shape``
        (``ceil(scale * lr.shape[:2])``). ``seed`` feeds the son's noise (used only when
        ``config.noise_std > 0``). ``keep_initial=False`` skips the SR image before adaptation
        (``initial_sr`` is then ``None``): one forward pass and one output-sized image less. ``quantized=True``
        gives the SR images as uint8 (``metrics.to_uint8`` of the float images, which PSNR and the PNG take
        anyway), made tile by tile when tiled: a quarter of the float image's memory.
        """
        num_steps = self.config.num_steps
        counts = (0, num_steps) if keep_initial else (num_steps,)
        if self.config.self_ensemble:
            if output_shape is None:
                output_shape = expected_sr_shape(lr.shape, self.config.scale)
            run = self_ensemble.adapt_at_steps(self, lr, kernel, counts, output_shape, seed)
            srs, losses, seconds = run.srs, run.son_losses, run.seconds
        elif self.config.back_projection:  # refines the float image
            srs, losses, seconds = self._execute(lr, kernel, counts, output_shape, seed)
            srs[num_steps] = self._back_project(srs[num_steps], lr, kernel)
        else:  # rounded by _execute, tile by tile when tiled
            srs, losses, seconds = self._execute(lr, kernel, counts, output_shape, seed, quantized)
        if quantized and refines_float_sr(self.config):
            srs = {n: metrics.to_uint8(sr) for n, sr in srs.items()}
        return AdaptationResult(sr=srs[num_steps], initial_sr=srs[0] if keep_initial else None, son_losses=losses,
                                seconds=seconds)

    def adapt_at_steps(self, lr: np.ndarray, kernel: Optional[np.ndarray], step_counts: Sequence[int],
                       output_shape: Optional[Tuple[int, int]] = None, seed: Tuple[int, int] = (0, 0)
                       ) -> MultiStepResult:
        """One run of ``max(step_counts)`` steps giving the SR image after each of ``step_counts``.

        ``srs[n]`` equals ``adapt`` with ``num_steps=n`` (the same ops: step ``i`` always uses
        ``config.inner_lr(i)``), at the cost of the longest run; ``config.num_steps`` is ignored.
        Other arguments as ``adapt``; with ``config.self_ensemble`` each ``srs[n]`` is the ensemble's.
        """
        if self.config.self_ensemble:
            if output_shape is None:
                output_shape = expected_sr_shape(lr.shape, self.config.scale)
            return self_ensemble.adapt_at_steps(self, lr, kernel, step_counts, output_shape, seed)
        return self.plain_adapt_at_steps(lr, kernel, step_counts, output_shape, seed)

    def plain_adapt_at_steps(self, lr: np.ndarray, kernel: Optional[np.ndarray], step_counts: Sequence[int],
                             output_shape: Optional[Tuple[int, int]] = None, seed: Tuple[int, int] = (0, 0)
                             ) -> MultiStepResult:
        """``adapt_at_steps`` of the input as it is, whatever ``config.self_ensemble`` says."""
        srs, losses, seconds = self._execute(lr, kernel, step_counts, output_shape, seed)
        if self.config.back_projection:
            srs = {n: self._back_project(sr, lr, kernel) for n, sr in srs.items()}
        return MultiStepResult(srs=srs, son_losses=losses, seconds=seconds)


# --------------------------------------------------------------------------- inputs, GT and their checks

def read_rgb(path: str) -> np.ndarray:
    """An input or GT image of the meta-test as float32 HWC in [0, 1].

    Only 8-bit RGB files are accepted (``read_image(strict=True)``): grayscale, alpha and 16-bit are
    ``MetaTestError``s naming the file.
    """
    return read_image(path, strict=True, what="image", error=MetaTestError).astype(np.float32) / 255.0


def check_pair(lr_path: str, lr_shape, gt_path: str, gt_shape, scale: float) -> None:
    """The modcropped GT must be the LR image's size times the scale, give or take one LR pixel."""
    wanted = np.asarray(lr_shape[:2]) * scale
    if np.any(np.abs(np.asarray(gt_shape[:2]) - wanted) >= scale):
        raise MetaTestError(
            f"GT {gt_path} is {gt_shape[0]}x{gt_shape[1]} after modcrop, but input {lr_path} is "
            f"{lr_shape[0]}x{lr_shape[1]} at scale {scale:g} (expected about "
            f"{wanted[0]:g}x{wanted[1]:g}); are the folders paired by sorted name?")


def paired_paths(input_dir: str, gt_dir: str, error: Type[ValueError] = MetaTestError) -> List[Tuple[str, str]]:
    """``(input, GT)`` image paths of two folders, paired by sorted order; different counts raise ``error``."""
    inputs = list_images(input_dir, "input", error=MetaTestError)
    gts = list_images(gt_dir, "GT", error=MetaTestError)
    if len(inputs) != len(gts):
        raise error(f"{len(inputs)} images in input folder {input_dir} but {len(gts)} in GT folder "
                    f"{gt_dir}; they are paired by sorted order")
    return list(zip(inputs, gts))


GT_SUFFIX = "_GT"
"""The reference's GT naming: ``baby_GT.png`` is the GT of ``baby.png`` (a GT named as its input also matches)."""


def names_correspond(input_path: str, gt_path: str) -> bool:
    """Whether a GT file is named after its input: the same stem, or the stem plus ``GT_SUFFIX``
    (extensions may differ)."""
    stem = os.path.splitext(os.path.basename(input_path))[0]
    gt_stem = os.path.splitext(os.path.basename(gt_path))[0]
    return gt_stem in (stem, stem + GT_SUFFIX)


def name_warning(pairs: Sequence[Tuple[str, str]]) -> Optional[str]:
    """One warning line naming the ``(input, GT)`` pairs whose names do not correspond
    (``names_correspond``), or ``None``; the pairing itself stays by sorted order."""
    odd = [(lr, gt) for lr, gt in pairs if not names_correspond(lr, gt)]
    if not odd:
        return None
    shown = ", ".join(f"{os.path.basename(lr)} <-> {os.path.basename(gt)}" for lr, gt in odd)
    return (f"warning: {len(odd)} of {len(pairs)} input/GT pairs have names that do not correspond "
            f"(paired by sorted order; GT of x.png: x.png or x{GT_SUFFIX}.png): {shown}")


def read_pair(lr_path: str, gt_path: str, scale: float) -> Tuple[np.ndarray, np.ndarray]:
    """An input and its GT modcropped to ``scale`` (float32 HWC in [0, 1]), their sizes checked (``check_pair``)."""
    lr, gt = read_rgb(lr_path), metrics.modcrop(read_rgb(gt_path), scale)
    check_pair(lr_path, lr.shape, gt_path, gt.shape, scale)
    return lr, gt


def check_kernel_fits(kernel: np.ndarray, kernel_path: str, lr_path: str, lr_shape,
                      error: Type[ValueError] = MetaTestError) -> None:
    """The blur kernel may not be larger than the input it degrades (the son could not be made)."""
    if kernel.shape[0] > lr_shape[0] or kernel.shape[1] > lr_shape[1]:
        raise error(f"kernel {kernel_path} is {kernel.shape[0]}x{kernel.shape[1]}, larger than input "
                    f"{lr_path} ({lr_shape[0]}x{lr_shape[1]})")


def father_shape(lr_shape, scale: float, son_grid: str = DEFAULT_SON_GRID,
                 ds_method: str = "direct") -> Tuple[int, int]:
    """``(H, W)`` of the part of an input its son is made from (the top-left corner).

    ``"reference"``: the whole input. The reference's direct subsampling keeps the pixels at
    ``round(linspace(0, H - scale, ceil(H / scale)))``, which are ``scale`` apart only when ``H / scale`` is a
    whole number: for a 70-pixel side at x4 they are 66 / 17 = 3.88 apart, a slightly stretched son that
    misleads the adaptation.  ``"exact"``: each side cropped (bottom, right) to the largest length ``m <= H``
    with ``m / scale`` whole (68 for 70 at x4; 70 for 71 at x2.5), on which that grid is exact; an input whose
    sides are already such lengths is unchanged, so both choices agree on it.  At a non-integer scale p/q (in
    lowest terms) ``m`` is a multiple of p, so up to p - 1 rows or columns go (x3.7: up to 36); an input left
    too small for its son is refused by ``check_son_size``.  (``metrics.modcrop``, the GT's crop, agrees at
    integer scales but not at others: it keeps 72 for 73 at x2.5, where 72 / 2.5 is not whole.)
    Bicubic subsampling (``ds_method='bicubic'``) maps output pixel ``x`` to input coordinate
    ``x * scale + (scale - 1) / 2`` whatever the size, a grid that is exact on any side, so it keeps the whole
    input under either choice.
    """
    if son_grid not in SON_GRIDS:
        raise ValueError(f"son_grid must be one of {SON_GRIDS}, got {son_grid!r}")
    if son_grid == "reference" or ds_method == "bicubic":
        return int(lr_shape[0]), int(lr_shape[1])

    def whole_multiple(side: int) -> int:
        m = int(side)
        while m > 0 and abs(m / scale - round(m / scale)) > 1e-6:
            m -= 1
        return m
    return whole_multiple(lr_shape[0]), whole_multiple(lr_shape[1])


def son_shape(lr_shape, scale: float) -> Tuple[int, int]:
    """The son's ``(H, W)`` for an input of ``lr_shape``: ``ceil(shape / scale)`` (``imresize``'s rule)."""
    return fix_scale_and_size(lr_shape[:2], scale=1.0 / scale)[1]


def check_son_size(lr_shape, scale: float, lr_path: str, son_grid: str = DEFAULT_SON_GRID,
                   ds_method: str = "direct", error: Type[ValueError] = MetaTestError) -> None:
    """An input too small for its scale (the son of its ``father_shape`` under ``MIN_SON_SIDE`` pixels a
    side) is an ``error`` naming ``lr_path``, the son's size and the smallest input the scale accepts."""
    def son_of(shape):
        return son_shape(father_shape(shape, scale, son_grid, ds_method), scale)

    father = father_shape(lr_shape, scale, son_grid, ds_method)
    son = son_shape(father, scale)
    if min(son) < MIN_SON_SIDE:
        smallest = next(side for side in itertools.count(1) if son_of((side, side))[0] >= MIN_SON_SIDE)
        cropped = (f" (of the input cropped to {father[0]}x{father[1]}, a multiple of the scale)"
                   if father != tuple(lr_shape[:2]) else "")
        raise error(f"input {lr_path} ({lr_shape[0]}x{lr_shape[1]}) is too small for x{scale:g}: its son would "
                    f"be {son[0]}x{son[1]}{cropped}; at x{scale:g} an input needs at least {smallest} pixels a "
                    f"side (son at least {MIN_SON_SIDE}x{MIN_SON_SIDE})")


# --------------------------------------------------------------------------- a folder

@dataclasses.dataclass
class FolderInputs:
    """The checked inputs of a folder meta-test (``load_inputs``): per input, in sorted order, its
    path, image (float32 HWC in [0, 1]), GT path and modcropped GT (``None`` without GT) and kernel."""

    input_paths: List[str]
    images: List[np.ndarray]
    gt_paths: Optional[List[str]]
    gts: List[Optional[np.ndarray]]
    kernels: List[ImageKernel]


def load_inputs(input_dir: str, kernel_source: KernelSource, scale: float, gt_dir: Optional[str] = None,
                log: Callable[[str], None] = print, son_grid: str = DEFAULT_SON_GRID,
                ds_method: str = "direct") -> FolderInputs:
    """Read and check everything a folder meta-test reads, before any work: the input images, their
    GT (count and sizes; names that do not correspond are named in a ``log`` warning line) and each
    input's kernel (readable, a proper kernel, not larger than its input).  ``son_grid`` and ``ds_method``
    (the meta-test's) decide which part of an input its son is made from, hence the smallest input accepted.

    Errors are one-line ``MetaTestError``s (``KernelError`` for kernels) naming the file.
    """
    if gt_dir:
        pairs = paired_paths(input_dir, gt_dir)
        warning = name_warning(pairs)
        if warning:
            log(warning)
        input_paths, gt_paths = [p for p, _ in pairs], [g for _, g in pairs]
        images, gts = map(list, zip(*(read_pair(p, g, scale) for p, g in pairs)))
    else:
        input_paths, gt_paths = list_images(input_dir, "input", error=MetaTestError), None
        images = [read_rgb(p) for p in input_paths]
        gts = [None] * len(images)
    image_kernels = [kernel_source.kernel_for(path) for path in input_paths]
    for path, lr, (kernel, origin) in zip(input_paths, images, image_kernels):
        check_son_size(lr.shape, scale, path, son_grid, ds_method)
        if kernel is not None:
            check_kernel_fits(kernel, origin, path, lr.shape)
    return FolderInputs(input_paths, images, gt_paths, gts, image_kernels)


def output_folder(save_dir: str, num_steps: int) -> str:
    """Where a folder meta-test of ``num_steps`` steps writes: ``save_dir/NN`` (two digits)."""
    return os.path.join(save_dir, "%02d" % num_steps)


def run_folder(tester: MetaTester, input_dir: str, save_dir: str, kernel_source: KernelSource,
               gt_dir: Optional[str] = None, log: Callable[[str], None] = print,
               extra_info: Optional[Dict] = None, inputs: Optional[FolderInputs] = None) -> Dict:
    """Meta-test every image of ``input_dir``; returns the ``results.json`` content.

    ``kernel_source`` gives each input's blur kernel (``KernelSource.from_file``, ``.bicubic()``,
    ``.from_folder``); each image's record names its kernel (``"kernel"``: the file, or ``"cubic"``).
    Without ``gt_dir`` no PSNR is computed.  ``inputs``: the ``load_inputs`` of these arguments when
    the caller has already checked them (the command line does so before loading the checkpoint).

    The output folder (``output_folder``) is checked before the first adaptation
    (``atomic.check_output_folder``); each PNG and ``results.json`` is written atomically, so a
    failure (a full disk: ``atomic.WriteError`` naming the file) leaves only complete files behind,
    and ``results.json`` only when every image was written.
    """
    cfg = tester.config
    if inputs is None:
        inputs = load_inputs(input_dir, kernel_source, cfg.scale, gt_dir, log, cfg.son_grid, cfg.ds_method)
    input_paths, images, gt_paths, gts = inputs.input_paths, inputs.images, inputs.gt_paths, inputs.gts
    out_dir = atomic.check_output_folder(output_folder(save_dir, cfg.num_steps), "output folder")
    shave = int(cfg.scale)
    records = []
    start = time.perf_counter()
    for index, (path, lr, gt, (kernel, origin)) in enumerate(zip(input_paths, images, gts, inputs.kernels)):
        name = os.path.splitext(os.path.basename(path))[0]
        out_shape = gt.shape[:2] if gt is not None else expected_sr_shape(lr.shape, cfg.scale)
        result = tester.adapt(lr, kernel, output_shape=out_shape, seed=(index, 0), keep_initial=gt is not None,
                              quantized=True)
        sr_uint8 = result.sr
        atomic.write_png(os.path.join(out_dir, name + ".png"), sr_uint8)
        record = {"name": name, "input": path, "kernel": origin, "seconds": result.seconds,
                  "son_losses": [float(x) for x in result.son_losses]}
        line = f"[{index + 1}/{len(images)}] {name}: {result.seconds:.2f} s"
        if gt is not None:
            bicubic = np.clip(imresize(lr, scale=cfg.scale, output_shape=out_shape, kernel="cubic"), 0, 1)
            record.update(
                gt=gt_paths[index],
                bicubic_psnr=metrics.psnr_y(bicubic, gt, shave),
                initial_psnr=metrics.psnr_y(result.initial_sr, gt, shave),
                final_psnr=metrics.psnr_y(sr_uint8, gt, shave),
                initial_ssim=metrics.ssim_y(result.initial_sr, gt, shave),
                final_ssim=metrics.ssim_y(sr_uint8, gt, shave))
            line += (f", PSNR initial {record['initial_psnr']:.4f} final {record['final_psnr']:.4f}"
                     f", SSIM final {record['final_ssim']:.4f}")
        tile = getattr(tester, "last_tile", 0)
        record.update(tile=tile, peak_memory_bytes=peak_memory_bytes())
        line += f", tile {tile or 'whole image'}, peak memory {record['peak_memory_bytes'] / 1e9:.2f} GB"
        log(line)
        records.append(record)

    summary = {"num_steps": cfg.num_steps, "scale": cfg.scale, "ds_method": cfg.ds_method,
               "inner_lr": list(cfg.inner_lr.rates(cfg.num_steps)), "kernel": kernel_source.name,
               "self_ensemble": cfg.self_ensemble,
               "seconds_total": time.perf_counter() - start, "images": records}
    summary.update(extra_info or {})
    if gt_paths is not None:
        summary["average_initial_psnr"] = float(np.mean([r["initial_psnr"] for r in records]))
        summary["average_final_psnr"] = float(np.mean([r["final_psnr"] for r in records]))
        summary["average_final_ssim"] = float(np.mean([r["final_ssim"] for r in records]))
    atomic.write_json(os.path.join(out_dir, "results.json"), summary)
    if gt_paths is not None:
        log(format_table(records))
        log("[*] Average PSNR ** Initial: %.4f, Final : %.4f"
            % (summary["average_initial_psnr"], summary["average_final_psnr"]))
    log(f"[*] {len(records)} images written to {out_dir} ({summary['seconds_total']:.1f} s)")
    return summary


def format_table(records: List[Dict]) -> str:
    """A small text table of per-image PSNR (dB, Y channel): bicubic, before and after adaptation."""
    width = max(len("image"), *(len(r["name"]) for r in records))
    lines = [f"{'image':<{width}}  bicubic  initial    final"]
    for r in records:
        lines.append(f"{r['name']:<{width}}  {r['bicubic_psnr']:7.2f}  {r['initial_psnr']:7.2f}  "
                     f"{r['final_psnr']:7.2f}")
    mean = {k: np.mean([r[k] for r in records]) for k in ("bicubic_psnr", "initial_psnr", "final_psnr")}
    lines.append(f"{'average':<{width}}  {mean['bicubic_psnr']:7.2f}  {mean['initial_psnr']:7.2f}  "
                 f"{mean['final_psnr']:7.2f}")
    return "\n".join(lines)


def before_after_figure(summary: Dict, out_dir: str, path: str, crop: int = 128) -> str:
    """A figure of a folder meta-test (``run_folder``'s summary, its output folder ``out_dir``): per input,
    a crop of its bicubic upscale beside the same crop of the SR output, and the kernel used
    (``plots.plot_before_after``); for inputs without GT."""
    from mzsr_tf import plots
    from mzsr_tf.kernels import load_kernel

    items = []
    for record in summary["images"]:
        lr = read_rgb(record["input"])
        sr = read_image(os.path.join(out_dir, record["name"] + ".png"), strict=True, what="SR output",
                        error=MetaTestError)
        bicubic = metrics.to_uint8(imresize(lr, scale=summary["scale"], output_shape=sr.shape[:2], kernel="cubic"))
        kernel = None if record["kernel"] == degradation.CUBIC else load_kernel(record["kernel"])
        items.append({"image": record["name"], "bicubic": bicubic, "sr": sr, "kernel": kernel,
                      "kernel_title": f"kernel: {os.path.basename(record['kernel'])}"})
    return plots.plot_before_after(items, path, crop=crop)
