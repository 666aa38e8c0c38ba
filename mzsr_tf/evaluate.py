"""Benchmark tables: MZSR after n steps beside bicubic interpolation and a ZSSR-like baseline.

A *cell* is one paper kernel (``mzsr_tf.testsets``) on one image set of a test set made by
``make_testset``; each input's blur kernel comes from the cell's ``KernelSource``
(``testset_kernel_source``: the kernel folder's one ``kernel.mat``, or one ``<image stem>.mat`` per
image).  For every image of every cell, ``evaluate``:

* adapts the network once for ``max(steps)`` steps and reads the SR image after each requested step
  count (``MetaTester.adapt_at_steps``, identical to separate meta-test runs); ``MZSR (0)`` is the
  network before adaptation;
* ``bicubic``: the LR input upscaled by MATLAB-style cubic interpolation (``imresize``, float64);
* ``zssr``: the same adaptation (same starting weights, son, loss, plain SGD and learning-rate
  schedule, whose last rate continues) run for up to ``ZSSRConfig.max_steps`` steps and stopped early
  when the son loss stalls (``zssr_should_stop``).  It is a no-meta-learning baseline in the sense of
  "many steps instead of a learned initialisation"; with the bicubic-pretrained weights it is the
  paper's "fine-tuning from a pre-trained model" (its Fig. 1c).  It is not the ZSSR of Shocher et al.
  (random initialisation, Adam, augmentations, gradual scales), whose numbers the paper quotes.

Scores are the reference's: PSNR and SSIM on the Y channel of uint8 images, shaving ``int(scale)``
pixels (``metrics.psnr_y``, ``metrics.ssim_y``), against the GT modcropped by the scale; the model
preset (test-time learning-rate schedule, subsampling) is the one the kernel names, or one preset for every
kernel at each kernel's own scale (``evaluate(..., preset=...)``, e.g. the multi-scale model).

``write_results`` writes ``results.json`` (every image and every cell), ``results.csv`` (one row per
cell and method), ``results.md`` (the paper's layout, with the paper's numbers beside ours) and the
figures of ``mzsr_tf.plots``.

The parts of a run: ``find_cells`` and ``check_cells`` (what to evaluate, checked before any work),
``load_runners`` (one network per checkpoint, a ``MetaTester`` and ZSSR baseline per preset and scale),
``evaluate_image`` (every method on one image, scored), ``ProgressLog`` (a line per image with an
ETA), ``summarize`` (per-cell means beside ``testsets.paper_results``); ``evaluate`` runs them in turn.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import os
import platform
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mzsr_tf import atomic, metrics
from mzsr_tf.adaptation import sgd_loop
from mzsr_tf.config import DEFAULT_SON_GRID, AdaptationConfig, get_preset
from mzsr_tf.degradation import degrade
from mzsr_tf.imresize import imresize
from mzsr_tf.kernels import ImageKernel, KernelSource
from mzsr_tf.meta_test import MetaTester, check_kernel_fits, father_shape, paired_paths, read_pair
from mzsr_tf.tiling import TilePolicy
from mzsr_tf.model import forward
from mzsr_tf.testsets import BicubicScenario, DEGRADATION_ORDER, KERNEL_FILE, PaperKernel, get_kernel, paper_results

BASELINES = ("bicubic", "zssr")


class EvaluationError(ValueError):
    """A bad evaluation request (missing set or kernel folder, bad steps); names the path or value."""


@dataclasses.dataclass(frozen=True)
class ZSSRConfig:
    """The ZSSR-like baseline's step budget and early stopping (see ``zssr_should_stop``)."""

    max_steps: int = 2000
    check_every: int = 50
    patience: int = 3
    min_rel_improvement: float = 1e-3

    def __post_init__(self):
        if self.max_steps < 1 or self.check_every < 1 or self.patience < 1:
            raise EvaluationError(f"ZSSR budget must have max_steps, check_every, patience >= 1, got {self}")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One paper kernel on one image set of a test set: where its inputs and GT are, and where each
    input's blur kernel comes from.

    ``paper_kernel`` sets the scale, the subsampling and the preset; ``kernel_source.kernel_for(lr_path)``
    gives the blur kernel of one input (``testset_kernel_source``).
    """

    paper_kernel: PaperKernel  # or a testsets.RandomKernels
    set_name: str
    input_dir: str
    gt_dir: str
    kernel_source: KernelSource


def _holds_kernels(folder: str) -> bool:
    return os.path.isdir(folder) and any(name.endswith(".mat") for name in os.listdir(folder))


def testset_kernel_source(kernel_dir: str, set_dir: Optional[str] = None) -> KernelSource:
    """The blur kernels of one set of a test set's kernel folder ``Input/<kernel>/``: its ``kernel.mat``
    for every image (what ``make_testset`` writes for the paper's kernels), else one ``<image stem>.mat``
    per image beside the images in ``set_dir`` (``rk``) or in ``kernel_dir`` itself (e.g. estimated
    kernels; ``KernelSource.from_folder``).  No ``.mat`` file in either is an ``EvaluationError``."""
    shared = os.path.join(kernel_dir, KERNEL_FILE)
    if os.path.isfile(shared):
        return KernelSource.from_file(shared)
    for folder in ([set_dir] if set_dir else []) + [kernel_dir]:
        if _holds_kernels(folder):
            return KernelSource.from_folder(folder)
    raise EvaluationError(f"kernel file {shared} is missing (and no per-image <image>.mat kernels beside the "
                          "images)")


def column_key(method: str, steps: Optional[int] = None) -> str:
    """``bicubic``, ``zssr`` or ``mzsr_<steps>``: the key of a table column."""
    return f"mzsr_{steps}" if method == "mzsr" else method


def column_title(key: str) -> str:
    """``Bicubic``, ``ZSSR`` or ``MZSR (n)``."""
    if key.startswith("mzsr_"):
        return f"MZSR ({key[5:]})"
    return {"bicubic": "Bicubic", "zssr": "ZSSR"}[key]


def check_steps(steps: Sequence[int]) -> Tuple[int, ...]:
    """Sorted unique step counts; each must be an integer >= 0."""
    if not steps:
        raise EvaluationError("no step counts given (e.g. --steps 0 1 10)")
    bad = [s for s in steps if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0]
    if bad:
        raise EvaluationError(f"step counts must be integers >= 0, got {list(steps)}")
    return tuple(sorted(set(int(s) for s in steps)))


def check_baselines(baselines: Sequence[str]) -> Tuple[str, ...]:
    """The baselines in ``BASELINES`` order; an unknown name is an error listing the known ones."""
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise EvaluationError(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in baselines)


def _subfolders(folder: str) -> List[str]:
    return sorted(e for e in os.listdir(folder) if os.path.isdir(os.path.join(folder, e)))


def find_cells(testset_dir: str, kernel_names: Optional[Sequence[str]] = None,
               set_names: Optional[Sequence[str]] = None) -> List[Cell]:
    """The cells of a test set (layout of ``mzsr_tf.testsets``), kernels × sets, checked.

    Without ``kernel_names``/``set_names`` every kernel folder and set found is used.  An unknown
    kernel name, a kernel or set absent from the test set, a missing GT folder or kernel file is an
    ``EvaluationError``/``TestSetError`` naming it and listing what exists (an unreadable
    ``kernel.mat`` a ``KernelError``).  Each cell's kernels: ``testset_kernel_source``.
    """
    input_root = os.path.join(testset_dir, "Input")
    if not os.path.isdir(testset_dir):
        raise EvaluationError(f"test-set folder {testset_dir} does not exist")
    if not os.path.isdir(input_root):
        raise EvaluationError(f"{testset_dir} is not a test set: no Input/ folder (make one with "
                              "scripts/make_testsets.py)")
    present = _subfolders(input_root)
    if kernel_names:
        paper_kernels = [get_kernel(name) for name in kernel_names]
        absent = [k.name for k in paper_kernels if k.name not in present]
        if absent:
            raise EvaluationError(f"kernel(s) {', '.join(absent)} not in test set {testset_dir}; it has: "
                                  + (", ".join(present) or "(none)"))
    else:  # every kernel folder, in the paper's order
        paper_kernels = sorted((get_kernel(name) for name in present), key=lambda k: DEGRADATION_ORDER.index(k.name))
        if not paper_kernels:
            raise EvaluationError(f"test set {testset_dir} has no kernel folders under Input/")
    cells = []
    for paper_kernel in paper_kernels:
        kernel_dir = os.path.join(input_root, paper_kernel.name)
        sets_here = _subfolders(kernel_dir)
        wanted = list(set_names) if set_names else sets_here
        missing = [s for s in wanted if s not in sets_here]
        if missing:
            raise EvaluationError(f"set(s) {', '.join(missing)} not found in {kernel_dir}; available: "
                                  + (", ".join(sets_here) or "(none)"))
        if not wanted:
            raise EvaluationError(f"{kernel_dir} holds no image sets")
        for set_name in wanted:
            gt_dir = os.path.join(testset_dir, paper_kernel.gt_folder, set_name)
            if not os.path.isdir(gt_dir):
                raise EvaluationError(f"GT folder {gt_dir} for {paper_kernel.name}/{set_name} does not exist")
            set_dir = os.path.join(kernel_dir, set_name)
            source = (KernelSource.bicubic() if isinstance(paper_kernel, BicubicScenario)
                      else testset_kernel_source(kernel_dir, set_dir))
            cells.append(Cell(paper_kernel, set_name, set_dir, gt_dir, source))
    return cells


def _image_pairs(cell: Cell) -> List[Tuple[str, str]]:
    return paired_paths(cell.input_dir, cell.gt_dir, EvaluationError)


def _read_pair(cell: Cell, lr_path: str, gt_path: str, image_kernel: ImageKernel):
    lr, gt = read_pair(lr_path, gt_path, cell.paper_kernel.scale)
    if image_kernel.kernel is not None:
        check_kernel_fits(image_kernel.kernel, image_kernel.origin, lr_path, lr.shape, EvaluationError)
    return lr, gt


def check_cells(cells: Sequence[Cell]) -> Dict[str, ImageKernel]:
    """Read every kernel and image pair once (sizes, pairing) before any work.

    Returns each input's blur kernel by its path: float32 ``[k, k]`` summing to 1 (None: bicubic
    degradation), and the file it came from.
    """
    image_kernels = {}
    for cell in cells:
        for lr_path, gt_path in _image_pairs(cell):
            kernel, origin = cell.kernel_source.kernel_for(lr_path)
            image_kernels[lr_path] = ImageKernel(None if kernel is None else kernel.astype(np.float32), origin)
            _read_pair(cell, lr_path, gt_path, image_kernels[lr_path])
    return image_kernels


def zssr_should_stop(son_losses: np.ndarray, config: ZSSRConfig) -> bool:
    """Early stopping of the ZSSR baseline, checked after every ``check_every`` steps.

    ``son_losses[i]`` is the son loss before step ``i``.  A check *improves* when the lowest loss of
    its last ``check_every`` steps is below ``(1 - min_rel_improvement)`` times the lowest loss before
    them.  Stop when the last ``patience`` checks all failed to improve.
    """
    every = config.check_every
    checks = len(son_losses) // every
    if checks <= config.patience:
        return False
    for k in range(checks - config.patience, checks):
        best_before = np.min(son_losses[:k * every])
        if np.min(son_losses[k * every:(k + 1) * every]) < best_before * (1 - config.min_rel_improvement):
            return False
    return True


@dataclasses.dataclass
class ZSSRResult:
    """The ZSSR baseline on one image: SR float32 HWC in [0, 1], steps run, son losses, seconds."""

    sr: np.ndarray
    steps: int
    son_losses: np.ndarray
    seconds: float


class ZSSRBaseline:
    """The meta-test's adaptation run in chunks of ``check_every`` steps until ``zssr_should_stop``.

    The son and the inputs are made in numpy float64 (``degrade``, ``imresize``); the steps run in
    one ``tf.function`` per chunk (``adaptation.sgd_loop``, the meta-test's loop), one trace for
    every image size.
    """

    def __init__(self, params: Sequence[tf.Variable], config: AdaptationConfig, budget: ZSSRConfig):
        self.params = list(params)
        self.config = config
        self.budget = budget
        image = tf.TensorSpec([1, None, None, None], tf.float32)
        param_specs = [tf.TensorSpec(p.shape, tf.float32) for p in self.params]
        self._steps = tf.function(self._run_steps, autograph=False,
                                  input_signature=[param_specs, image, image, tf.TensorSpec([None], tf.float32)])
        self._output = tf.function(lambda params, x: tf.clip_by_value(forward(params, x)[0], 0.0, 1.0),
                                   autograph=False, input_signature=[param_specs, image])

    @staticmethod
    def _run_steps(params, son_ilr, father, rates):
        params, losses, _ = sgd_loop(forward, params, son_ilr, father, rates)
        return params, losses

    def run(self, lr: np.ndarray, kernel: np.ndarray, output_shape: Tuple[int, int]) -> ZSSRResult:
        """Adapt to ``lr`` (float32 HWC in [0, 1], blurred by ``kernel``) and upscale it to ``output_shape``."""
        cfg, budget = self.config, self.budget
        start = time.perf_counter()
        lr64 = lr.astype(np.float64)
        father_h, father_w = father_shape(lr.shape, cfg.scale, cfg.son_grid, cfg.ds_method)  # as MZSR's son
        son = degrade(lr64[:father_h, :father_w], kernel.astype(np.float64), cfg.scale, ds_method=cfg.ds_method)
        son_ilr = imresize(son, scale=cfg.scale, output_shape=(father_h, father_w) + lr.shape[2:],
                           kernel=cfg.upscale_method)
        lr_ilr = imresize(lr64, scale=cfg.scale, output_shape=tuple(output_shape) + lr.shape[2:],
                          kernel=cfg.upscale_method)
        son_ilr = tf.constant(son_ilr[None], tf.float32)
        father = tf.constant(lr[None, :father_h, :father_w], tf.float32)
        params = [tf.convert_to_tensor(p) for p in self.params]
        losses = np.zeros(0, np.float32)
        while len(losses) < budget.max_steps and not zssr_should_stop(losses, budget):
            first = len(losses)
            count = min(budget.check_every, budget.max_steps - first)
            rates = [cfg.inner_lr(i) for i in range(first, first + count)]
            params, chunk = self._steps(params, son_ilr, father, tf.constant(rates, tf.float32))
            losses = np.concatenate([losses, chunk.numpy()])
        sr = self._output(params, tf.constant(lr_ilr[None], tf.float32)).numpy()
        return ZSSRResult(sr=sr, steps=len(losses), son_losses=losses, seconds=time.perf_counter() - start)


def bicubic_upscale(lr: np.ndarray, scale: float, output_shape: Tuple[int, int]) -> np.ndarray:
    """The bicubic baseline: cubic ``imresize`` of ``lr`` to ``output_shape``, float64 in [0, 1]."""
    ilr = imresize(lr.astype(np.float64), scale=scale, output_shape=tuple(output_shape) + lr.shape[2:],
                   kernel="cubic")
    return np.clip(ilr, 0.0, 1.0)


def _score(sr: np.ndarray, gt: np.ndarray, scale: float) -> Dict[str, float]:
    sr_uint8 = metrics.to_uint8(sr)
    shave = int(scale)
    return {"psnr": metrics.psnr_y(sr_uint8, gt, shave), "ssim": metrics.ssim_y(sr_uint8, gt, shave)}


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- evaluation


def table_columns(steps: Sequence[int], baselines: Sequence[str]) -> List[str]:
    """The column keys in table order: the baselines as given, then ``mzsr_<n>`` for each step count."""
    return [column_key(b) for b in baselines] + [column_key("mzsr", n) for n in steps]


@dataclasses.dataclass
class PresetRunners:
    """What runs the methods on the images of one ``(preset, scale)`` setting (``cell_setting``).

    ``tester`` adapts for the largest step count; ``zssr`` is None when that baseline is not asked
    for; ``checkpoint`` is the prefix the weights were read from (``checkpoints.load_weights``).
    """

    tester: MetaTester
    zssr: Optional[ZSSRBaseline]
    checkpoint: str


Setting = Tuple[str, float]
"""How a cell is meta-tested: (preset name, scale)."""


def cell_setting(cell: Cell, preset: Optional[str] = None) -> Setting:
    """``(preset, scale)`` of a cell's meta-test: the preset its kernel names, or ``preset`` for every cell
    (e.g. ``multiscale``: its learning-rate schedule at each kernel's own scale).  A preset whose
    subsampling is not the kernel's is an ``EvaluationError``."""
    paper_kernel = cell.paper_kernel
    if preset is None:
        return paper_kernel.preset, paper_kernel.scale
    chosen = get_preset(preset)
    if chosen.ds_method != paper_kernel.ds_method:
        raise EvaluationError(f"kernel {paper_kernel.name} uses {paper_kernel.ds_method} subsampling, but preset "
                              f"{preset} meta-tests with {chosen.ds_method} subsampling")
    return preset, paper_kernel.scale


def load_runners(checkpoints: Mapping[str, str], settings: Sequence[Setting], max_steps: int,
                 zssr: Optional[ZSSRConfig], self_ensemble: bool = False,
                 son_grid: str = DEFAULT_SON_GRID, tiling: Optional[TilePolicy] = None,
                 son_crops: int = 0) -> Dict[Setting, PresetRunners]:
    """The runners of each ``(preset, scale)`` setting, with the weights of ``checkpoints[preset]``.

    Settings given the same checkpoint path share one network, read once.  ``zssr`` None: no ZSSR
    baseline.  ``self_ensemble``: the MZSR tester averages the eight flips/rotations, each adapted
    (``mzsr_tf.self_ensemble``; the ZSSR baseline stays plain).  ``son_grid``: ``AdaptationConfig.son_grid``
    of the MZSR tester and of the ZSSR baseline alike.  A checkpoint that does not load raises
    ``CheckpointError``.
    """
    from mzsr_tf.checkpoints import load_weights
    from mzsr_tf.model import MZSRNet

    networks: Dict[str, Tuple[MZSRNet, str]] = {}  # checkpoint path -> (network, prefix read)
    runners = {}
    for preset_name, scale in settings:
        path = checkpoints[preset_name]
        if path not in networks:
            model = MZSRNet()
            networks[path] = (model, load_weights(model, path))
        model, prefix = networks[path]
        config = get_preset(preset_name).adaptation_config(scale=scale, num_steps=max_steps, son_grid=son_grid)
        runners[preset_name, scale] = PresetRunners(
            tester=MetaTester(model.trainable_variables,
                              dataclasses.replace(config, self_ensemble=self_ensemble, son_crops=son_crops), tiling),
            zssr=ZSSRBaseline(model.trainable_variables, config, zssr) if zssr is not None else None,
            checkpoint=prefix)
    return runners


@dataclasses.dataclass
class MethodOutput:
    """One column on one image: the SR image (float HWC in [0, 1], the GT's shape), the seconds it
    took, and extra fields for the image record (e.g. ``steps``)."""

    sr: np.ndarray
    seconds: float
    extra: Dict


@dataclasses.dataclass
class ImageResult:
    """One image evaluated: its ``results.json`` record, its LR input and modcropped GT (float32 HWC in
    [0, 1]) and every column's output."""

    record: Dict
    lr: np.ndarray
    gt: np.ndarray
    outputs: Dict[str, MethodOutput]


def evaluate_image(runners: PresetRunners, cell: Cell, index: int, lr_path: str, gt_path: str,
                   image_kernel: ImageKernel, steps: Sequence[int], baselines: Sequence[str]) -> ImageResult:
    """Every method on one image of ``cell`` (blurred by ``image_kernel``, float32 ``[k, k]``), scored.

    ``index`` is the image's place in its cell; it seeds the son's noise as ``meta_test.run_folder``
    does.  The record holds the image's names and paths, the MZSR run's wall and CPU seconds and son
    losses, and for each column (``table_columns``) PSNR, SSIM, seconds and the method's extra fields.
    """
    scale = cell.paper_kernel.scale
    lr, gt = _read_pair(cell, lr_path, gt_path, image_kernel)
    kernel = image_kernel.kernel
    outputs: Dict[str, MethodOutput] = {}
    if "bicubic" in baselines:
        start = time.perf_counter()
        sr = bicubic_upscale(lr, scale, gt.shape[:2])
        outputs["bicubic"] = MethodOutput(sr, time.perf_counter() - start, {})
    if "zssr" in baselines:
        zssr = runners.zssr.run(lr, kernel, gt.shape[:2])
        outputs["zssr"] = MethodOutput(zssr.sr, zssr.seconds,
                                       {"steps": zssr.steps, "final_son_loss": float(zssr.son_losses[-1])})
    cpu_start = time.process_time()  # CPU seconds of all threads: robust to other jobs on the machine
    run = runners.tester.adapt_at_steps(lr, kernel, steps, output_shape=gt.shape[:2], seed=(index, 0))
    run_cpu_seconds = time.process_time() - cpu_start
    for n in steps:
        outputs[column_key("mzsr", n)] = MethodOutput(run.srs[n], run.seconds, {"steps": n})
    record = {"kernel": cell.paper_kernel.name, "set": cell.set_name,
              "image": os.path.splitext(os.path.basename(lr_path))[0], "input": lr_path, "gt": gt_path,
              "kernel_file": image_kernel.origin,
              "mzsr_run_seconds": run.seconds, "mzsr_run_cpu_seconds": run_cpu_seconds,
              "mzsr_run_steps": max(steps), "son_losses": [float(x) for x in run.son_losses], "columns": {}}
    for key in table_columns(steps, baselines):
        output = outputs[key]
        record["columns"][key] = {**_score(output.sr, gt, scale), "seconds": output.seconds, **output.extra}
    return ImageResult(record, lr, gt, outputs)


def figure_item(result: ImageResult) -> Dict:
    """What ``plots.plot_crops`` draws of one image: names, LR, GT, uint8 outputs and PSNR by column."""
    record = result.record
    return {"kernel": record["kernel"], "set": record["set"], "image": record["image"],
            "lr": result.lr, "gt": result.gt,
            "outputs": {key: metrics.to_uint8(result.outputs[key].sr) for key in record["columns"]},
            "scores": {key: value["psnr"] for key, value in record["columns"].items()}}


class ProgressLog:
    """One line per image evaluated: its PSNR per column, the MZSR run's seconds, the time elapsed
    since the log was made and an ETA (elapsed time per image so far times the images left)."""

    def __init__(self, total: int, log: Callable[[str], None]):
        self.total = total
        self.log = log
        self.done = 0
        self.start = time.perf_counter()

    def image_done(self, record: Mapping) -> None:
        """Log the line of one more image (``record`` as ``evaluate_image`` makes it)."""
        self.done += 1
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        scores = ", ".join(f"{column_title(key)} {value['psnr']:.2f}" for key, value in record["columns"].items())
        self.log(f"[{self.done:{len(str(self.total))}d}/{self.total}] {record['kernel']} {record['set']} "
                 f"{record['image']}: {scores} dB | {record['mzsr_run_seconds']:.1f} s | elapsed "
                 f"{_format_duration(elapsed)}, ETA {_format_duration(eta)}")


def _settings_with_checkpoints(cells: Sequence[Cell], checkpoints: Mapping[str, str],
                               preset: Optional[str]) -> List[Setting]:
    """The sorted ``(preset, scale)`` settings the cells need (``cell_setting``); each preset must have a
    checkpoint."""
    if not cells:
        raise EvaluationError("nothing to evaluate: no cells")
    settings = sorted({cell_setting(cell, preset) for cell in cells})
    missing = sorted({name for name, _ in settings if name not in checkpoints})
    if missing:
        raise EvaluationError(f"no checkpoint given for preset(s) {', '.join(missing)}")
    return settings


def evaluate(cells: Sequence[Cell], checkpoints: Mapping[str, str], steps: Sequence[int] = (0, 1, 10),
             baselines: Sequence[str] = ("bicubic",), zssr: ZSSRConfig = ZSSRConfig(),
             figure_images: Optional[Sequence[str]] = None,
             log: Callable[[str], None] = print, self_ensemble: bool = False,
             preset: Optional[str] = None, limit: int = 0, son_grid: str = DEFAULT_SON_GRID,
             tiling: Optional[TilePolicy] = None, son_crops: int = 0) -> Dict:
    """Score every image of every cell; returns the results (``write_results`` saves them).

    Args:
      cells: from ``find_cells``.
      checkpoints: checkpoint path (TF1/TF2 prefix or folder) for each preset the cells' kernels
        name (``cells[i].paper_kernel.preset``), e.g. ``{"direct_x2": ".../Pretrained/Pretrained"}``,
        or for ``preset``.
      steps: MZSR step counts (0 = the network before adaptation).
      baselines: any of ``bicubic``, ``zssr``.
      zssr: the ZSSR baseline's budget.
      figure_images: image names (file stems) kept for the crop figures; by default the first image
        of each cell.
      log: where progress lines go (``ProgressLog``).
      self_ensemble: the MZSR columns are the self-ensemble of eight flips/rotations, each adapted
        (``mzsr_tf.self_ensemble``); the results say so and their tables label the rows.
      preset: meta-test every cell with this preset (its learning-rate schedule, at the cell's own scale)
        instead of the one its kernel names, e.g. ``multiscale`` on ×2 and ×4 kernels (``cell_setting``).
      limit: > 0 evaluates only the first ``limit`` images (sorted by name) of each set, e.g. a
        validation subset.
      tiling: how the MZSR columns tile each image (``mzsr_tf.tiling.TilePolicy``; default: whole images).
      son_crops: the MZSR columns' fast mode (``AdaptationConfig.son_crops``; 0: the paper's whole-son steps).
      son_grid: ``"exact"`` (the default) or ``"reference"`` (``mzsr_tf.meta_test.father_shape``); the results
        record it, and tables label the rows made with the reference's.

    Returns:
      A dict with ``cells`` (per cell and column: mean PSNR, SSIM, seconds per image),
      ``images`` (per image and column), run information, and ``figures`` data (kept images).

    Example::

        cells = find_cells("dataset/testsets/benchmark", ["g20"], ["Set5"])
        results = evaluate(cells, {"direct_x2": "checkpoints/direct_x2"}, steps=[0, 1, 10])
        write_results(results, "results/eval_g20")
    """
    steps = check_steps(steps)
    baselines = check_baselines(baselines)
    if limit < 0:
        raise EvaluationError(f"limit must be >= 0 (0: every image), got {limit}")
    settings = _settings_with_checkpoints(cells, checkpoints, preset)
    runners = load_runners(checkpoints, settings, max(steps), zssr if "zssr" in baselines else None, self_ensemble,
                           son_grid, tiling, son_crops)
    image_kernels = check_cells(cells)
    columns = table_columns(steps, baselines)
    work = [(cell, index, pair) for cell in cells
            for index, pair in enumerate(_image_pairs(cell)[:limit or None])]
    image_records, kept = [], []
    progress = ProgressLog(len(work), log)
    start, cpu_start = time.perf_counter(), time.process_time()
    for cell, index, (lr_path, gt_path) in work:
        result = evaluate_image(runners[cell_setting(cell, preset)], cell, index, lr_path, gt_path,
                                image_kernels[lr_path], steps, baselines)
        image_records.append(result.record)
        if (result.record["image"] in figure_images) if figure_images else index == 0:
            kept.append(figure_item(result))
        progress.image_done(result.record)
    return {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "checkpoints": {preset_name: runner.checkpoint for (preset_name, _), runner in runners.items()},
        "preset": preset,
        "limit": limit,
        "steps": list(steps),
        "baselines": list(baselines),
        "zssr": dataclasses.asdict(zssr) if "zssr" in baselines else None,
        "columns": columns,
        "self_ensemble": self_ensemble,
        "son_grid": son_grid,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "tensorflow": tf.__version__},
        "seconds_total": time.perf_counter() - start,
        "cpu_seconds_total": time.process_time() - cpu_start,
        "cells": summarize(cells, image_records, columns, preset),
        "images": image_records,
        "figures": kept,
    }


def summarize(cells: Sequence[Cell], image_records: Sequence[Mapping], columns: Sequence[str],
              preset: Optional[str] = None) -> List[Dict]:
    """Per cell and column: mean PSNR, SSIM and seconds per image, and the paper's numbers for the cell's
    preset (``testsets.paper_results``; ``preset`` as in ``evaluate``) if any."""
    summary = []
    for cell in cells:
        paper_kernel = cell.paper_kernel
        records = [r for r in image_records if r["kernel"] == paper_kernel.name and r["set"] == cell.set_name]
        preset_name, _ = cell_setting(cell, preset)
        paper = paper_results(preset_name, paper_kernel, cell.set_name)
        entry = {"kernel": paper_kernel.name, "paper_kernel": paper_kernel.paper_name, "set": cell.set_name,
                 "preset": preset_name, "images": len(records),
                 "mzsr_run_seconds_per_image": float(np.mean([r["mzsr_run_seconds"] for r in records])),
                 "mzsr_run_cpu_seconds_per_image": float(np.mean([r["mzsr_run_cpu_seconds"] for r in records])),
                 "columns": {}, "paper": {k: {"psnr": v[0], "ssim": v[1]} for k, v in paper.items()}}
        for key in columns:
            values = [r["columns"][key] for r in records]
            entry["columns"][key] = {name: float(np.mean([v[name] for v in values]))
                                     for name in ("psnr", "ssim", "seconds")}
            if key == "zssr":
                entry["columns"][key]["steps"] = float(np.mean([v["steps"] for v in values]))
        summary.append(entry)
    return summary


# --------------------------------------------------------------------------- writing


def _cell_text(value: Optional[Mapping]) -> str:
    if value is None:
        return "–"
    return f"{value['psnr']:.2f}/" + ("–" if value["ssim"] is None else f"{value['ssim']:.4f}")


def son_grid_of(results: Mapping) -> str:
    """The son grid ``results`` were made with; results written before the option existed used the
    reference's (they have no ``son_grid``)."""
    return results.get("son_grid", "reference")


def markdown_table(results: Mapping) -> str:
    """The paper's layout: rows kernel × dataset (ours, then the paper's where it has them),
    columns Bicubic, ZSSR, MZSR (n); cells ``PSNR/SSIM`` (Y channel)."""
    columns = results["columns"]
    lines = ["| Kernel | Dataset | | " + " | ".join(column_title(c) for c in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    last_kernel = None
    for cell in results["cells"]:
        kernel = f"{cell['paper_kernel']} (`{cell['kernel']}`)" if cell["kernel"] != last_kernel else ""
        last_kernel = cell["kernel"]
        ours = "ours" + (", self-ensemble" if results.get("self_ensemble") else "") \
            + (", reference son grid" if son_grid_of(results) == "reference" else "")
        lines.append(f"| {kernel} | {cell['set']} | {ours} | "
                     + " | ".join(_cell_text(cell["columns"][c]) for c in columns) + " |")
        if cell["paper"]:
            lines.append("| | | paper | " + " | ".join(_cell_text(cell["paper"].get(c)) for c in columns) + " |")
    return "\n".join(lines)


def markdown_report(results: Mapping, command: Optional[str] = None, testsets: Optional[str] = None) -> str:
    """``results.md``: what was run (checkpoints, data, command, date, machine), the table, timing."""
    lines = ["# MZSR evaluation", "",
             f"- date: {results['created']}",
             f"- machine: {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
             f"TensorFlow {results['machine']['tensorflow']}"]
    for preset_name, path in results["checkpoints"].items():
        lines.append(f"- checkpoint ({preset_name}): `{path}`")
    if testsets:
        lines.append(f"- test sets: `{testsets}`")
    if results.get("preset"):
        lines.append(f"- every kernel meta-tested with preset `{results['preset']}` (its learning-rate schedule) "
                     "at the kernel's own scale")
    if results.get("limit"):
        lines.append(f"- the first {results['limit']} images of each set only")
    if results.get("self_ensemble"):
        lines.append("- MZSR columns: self-ensemble (the eight flips/rotations of each input, each adapted with its "
                     "kernel turned alike, averaged; 8x the time of plain MZSR)")
    if son_grid_of(results) == "reference":
        lines.append("- MZSR columns: son grid `reference` (the son of the whole input, as the reference; its grid "
                     "is stretched on sides that are not multiples of the scale)")
    else:
        lines.append(f"- MZSR columns: son grid `{son_grid_of(results)}` (the son of each input cropped to a multiple "
                     "of the scale; beyond the reference)")
    if command:
        lines.append(f"- command: `{command}`")
    if results.get("zssr"):
        z = results["zssr"]
        lines.append(f"- ZSSR baseline: the same adaptation for up to {z['max_steps']} steps, stopped when "
                     f"{z['patience']} checks in a row (every {z['check_every']} steps) improve the son loss "
                     f"by less than {z['min_rel_improvement']:g} (relative)")
    lines += ["", "PSNR (dB) / SSIM on the Y channel, border of `scale` pixels shaved; \"paper\" rows are "
              "the published numbers (Soh et al., CVPR 2020; their ZSSR is Shocher et al.'s).", "",
              markdown_table(results), "", "## Time", "",
              f"Whole run: {results['seconds_total']:.1f} s wall, {results['cpu_seconds_total']:.1f} s CPU "
              f"(all threads) for {len(results['images'])} images; the first image of each model includes "
              "the one-time graph tracing.", "",
              f"| Kernel | Dataset | images | MZSR run ({max(results['steps'])} steps, all step counts): "
              "wall s/image | CPU s/image |" + (" ZSSR wall s/image (steps) |" if results.get("zssr") else ""),
              "|---|---|---|---|---|" + ("---|" if results.get("zssr") else "")]
    for cell in results["cells"]:
        row = (f"| {cell['kernel']} | {cell['set']} | {cell['images']} | "
               f"{cell['mzsr_run_seconds_per_image']:.2f} | {cell['mzsr_run_cpu_seconds_per_image']:.2f} |")
        if results.get("zssr"):
            z = cell["columns"]["zssr"]
            row += f" {z['seconds']:.1f} ({z['steps']:.0f}) |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def write_results(results: Mapping, out_dir: str, command: Optional[str] = None,
                  testsets: Optional[str] = None) -> Dict[str, str]:
    """Write ``results.json``, ``results.csv``, ``results.md`` and the figures; returns their paths.

    Each file is written atomically (``mzsr_tf.atomic``): a failure (a full disk) is an
    ``atomic.WriteError`` naming the file and leaves the files written before it complete.
    """
    from mzsr_tf import plots

    paths = {name: os.path.join(out_dir, name) for name in ("results.json", "results.csv", "results.md")}
    serialisable = {k: v for k, v in results.items() if k != "figures"}
    serialisable.update(command=command, testsets=testsets)
    atomic.write_json(paths["results.json"], serialisable)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["kernel", "paper_kernel", "set", "method", "steps", "images", "psnr", "ssim",
                     "seconds_per_image", "paper_psnr", "paper_ssim"])
    for cell in results["cells"]:
        for key, value in cell["columns"].items():
            method, _, n = key.partition("_")
            paper = cell["paper"].get(key, {})
            writer.writerow([cell["kernel"], cell["paper_kernel"], cell["set"], method,
                             n if n else (f"{value['steps']:.0f}" if "steps" in value else ""),
                             cell["images"], f"{value['psnr']:.4f}", f"{value['ssim']:.4f}",
                             f"{value['seconds']:.4f}", paper.get("psnr", ""), paper.get("ssim", "")])
    atomic.write_text(paths["results.csv"], table.getvalue())
    atomic.write_text(paths["results.md"], markdown_report(results, command=command, testsets=testsets))
    figures_dir = os.path.join(out_dir, "figures")
    paths["psnr_vs_steps"] = plots.plot_psnr_vs_steps(results["cells"], results["steps"],
                                                       os.path.join(figures_dir, "psnr_vs_steps.png"))
    for kernel_name in dict.fromkeys(item["kernel"] for item in results["figures"]):
        items = [item for item in results["figures"] if item["kernel"] == kernel_name]
        path = os.path.join(figures_dir, f"crops_{kernel_name}.png")
        shown = [key for key in results["columns"] if key != "mzsr_0"]
        paths[f"crops_{kernel_name}"] = plots.plot_crops(items, shown, path,
                                                         title=get_kernel(kernel_name).paper_name)
    return paths
