"""Images without a kernel: estimate each input's blur kernel, and the blind benchmark.

MZSR needs the blur kernel of its input to make the son.  When the input comes without one, the
kernel is estimated from the input alone (``mzsr_tf.kernel_estimation``: KernelGAN) and the meta-test
runs with the estimate:

* ``estimate_image``: one image, its kernel saved as ``<image stem>.mat`` (key ``kernel``, 21 x 21) and
  a small figure ``<image stem>_kernel.png``, with progress lines (estimation is the slowest step of
  a blind run);
* ``estimate_folder``: every image of a folder, and ``estimation.json`` with the seconds per image
  (``scripts/estimate_kernel.py``);
* ``estimating_kernel_source``: a ``KernelSource`` that estimates each input's kernel when the
  meta-test asks for it and saves it beside the SR output (``scripts/main.py --estimate-kernel``).

The blind benchmark (``blind_benchmark``, ``scripts/blind_benchmark.py``) runs MZSR on a test set with
one random kernel per image (``make_testsets.py --kernels rk``) under four assumptions about the
kernel: the true per-image kernels, the estimated ones, none (the bicubic fallback, ``--kernelpath
''``) and a fixed g^d_2.0 for every image; it reports per set and step count the mean PSNR of each,
how much of the gap between the fallback and the true kernels the estimates recover, on how many
images the estimates do worse than the fallback, the kernel errors and the seconds per estimate.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mzsr_tf import atomic, kernels
from mzsr_tf.data.images import list_images
from mzsr_tf.kernel_estimation import (ImageTooSmallError, KernelEstimator, KernelGANConfig, kernel_error,
                                       minimum_image_size)
from mzsr_tf.kernels import ImageKernel, KernelSource
from mzsr_tf.meta_test import MetaTestError, read_rgb

ESTIMATION_RECORD = "estimation.json"
FIGURE_SUFFIX = "_kernel.png"
PROGRESS_LINES = 4
"""How many progress lines one image's estimation prints (at each quarter of its iterations)."""


@dataclasses.dataclass(frozen=True)
class EstimatedKernel:
    """One image's estimated kernel (float64 ``[k, k]``, sums to 1), the files it was saved to and the
    wall seconds the estimation took."""

    image: str
    kernel: np.ndarray
    kernel_file: str
    figure_file: str
    seconds: float


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def check_estimable(image_paths: Sequence[str], config: KernelGANConfig, images: Optional[Sequence] = None) -> None:
    """Every image must be an 8-bit RGB file large enough to estimate a kernel from; the first that is
    not is a one-line ``MetaTestError`` naming it (before any estimation starts)."""
    smallest = minimum_image_size(config)
    for index, path in enumerate(image_paths):
        shape = (images[index] if images is not None else read_rgb(path)).shape
        if min(shape[:2]) < smallest:
            raise MetaTestError(f"input {path} ({shape[0]}x{shape[1]}) is too small to estimate its kernel from: "
                                f"the estimator needs at least {smallest}x{smallest} pixels")


def estimate_image(image_path: str, save_dir: str, scale: float, estimator: KernelEstimator,
                   seed: int = 0, log: Callable[[str], None] = print) -> EstimatedKernel:
    """Estimate the blur kernel of the image at ``image_path`` with ``estimator`` (one serves many images:
    its training step is traced once) and save ``<stem>.mat`` and ``<stem>_kernel.png`` in ``save_dir``;
    ``log`` gets ``PROGRESS_LINES`` progress lines.

    ``scale`` 2 or 4.  A file that cannot be read, or an image too small, is a ``MetaTestError`` naming it.
    """
    lr = read_rgb(image_path)
    name = _stem(image_path)
    start = time.perf_counter()
    marks: set = set()  # the iterations that print a line, filled once the total is known

    def progress(iteration: int, total: int) -> None:
        if not marks:
            marks.update(max(1, round(total * (i + 1) / PROGRESS_LINES)) for i in range(PROGRESS_LINES))
        if iteration in marks:
            log(f"  estimating the kernel of {name}: {iteration}/{total} iterations, "
                f"{time.perf_counter() - start:.1f} s")

    try:
        kernel = estimator.estimate(lr, int(scale), seed=seed, progress=progress)
    except ImageTooSmallError as error:
        raise MetaTestError(f"input {image_path}: {error}") from None
    seconds = time.perf_counter() - start
    from mzsr_tf import plots
    os.makedirs(save_dir, exist_ok=True)
    kernel_file = os.path.join(save_dir, name + ".mat")
    kernels.save_kernel(kernel_file, kernel)
    figure_file = plots.plot_kernel(kernel, os.path.join(save_dir, name + FIGURE_SUFFIX),
                                    title=f"{name}: estimated kernel (x{scale:g})")
    return EstimatedKernel(name, kernel, kernel_file, figure_file, seconds)


def estimation_record(estimates: Sequence[EstimatedKernel], scale: float, config: KernelGANConfig,
                      seed: int) -> Dict:
    """What ``estimation.json`` holds: the settings, and per image its files and seconds."""
    return {"estimator": "KernelGAN (mzsr_tf.kernel_estimation)", "scale": scale, "seed": seed,
            "config": dataclasses.asdict(config),
            "seconds_per_image": float(np.mean([e.seconds for e in estimates])) if estimates else None,
            "images": {e.image: {"kernel": e.kernel_file, "figure": e.figure_file, "seconds": e.seconds}
                       for e in estimates}}


def estimate_folder(input_dir: str, save_dir: str, scale: float, config: KernelGANConfig = KernelGANConfig(),
                    seed: int = 0, log: Callable[[str], None] = print) -> Dict:
    """Estimate the kernel of every image in ``input_dir`` (sorted), save them in ``save_dir`` and write
    ``save_dir/estimation.json``; returns its content.  Every image is checked before the first
    estimation."""
    paths = list_images(input_dir, "input", error=MetaTestError)
    check_estimable(paths, config)
    atomic.check_output_folder(save_dir, "--savepath")
    estimates: List[EstimatedKernel] = []
    estimator = KernelEstimator(config)
    for index, path in enumerate(paths):
        estimate = estimate_image(path, save_dir, scale, estimator, seed, log)
        estimates.append(estimate)
        log(f"[{index + 1}/{len(paths)}] {estimate.image}: {estimate.seconds:.1f} s -> {estimate.kernel_file}")
    record = estimation_record(estimates, scale, config, seed)
    atomic.write_json(os.path.join(save_dir, ESTIMATION_RECORD), record)
    return record


class EstimatingKernels:
    """``--estimate-kernel``: a ``KernelSource`` (``.source``) that estimates each input's kernel when
    the meta-test asks for it, saving it in ``save_dir``; ``.estimates`` holds those made so far and
    ``.record()`` what ``results.json`` records of them."""

    def __init__(self, save_dir: str, scale: float, config: KernelGANConfig = KernelGANConfig(), seed: int = 0,
                 log: Callable[[str], None] = print):
        self.save_dir, self.scale, self.config, self.seed, self.log = save_dir, scale, config, seed, log
        self.estimator = KernelEstimator(config)
        self.estimates: List[EstimatedKernel] = []
        self.source = KernelSource(save_dir, f"kernels estimated from each input (KernelGAN), saved in {save_dir}",
                                   self._estimate)

    def _estimate(self, image_path: str) -> ImageKernel:
        estimate = estimate_image(image_path, self.save_dir, self.scale, self.estimator, self.seed, self.log)
        self.estimates.append(estimate)
        self.log(f"estimated the kernel of {estimate.image} in {estimate.seconds:.1f} s -> {estimate.kernel_file}")
        return ImageKernel(estimate.kernel, estimate.kernel_file)

    def record(self) -> Dict:
        return estimation_record(self.estimates, self.scale, self.config, self.seed)


# --------------------------------------------------------------------------- the blind benchmark

ASSUMPTIONS = {
    "true": "the true per-image kernels",
    "estimated": "the estimated kernels (KernelGAN)",
    "bicubic": "no kernel: the bicubic fallback (--kernelpath '')",
    "g20": "a fixed g^d_2.0 for every image",
}
"""The kernel assumptions of the blind benchmark, in table order."""


def assumption_source(assumption: str, true_source: KernelSource, estimated_dir: str) -> KernelSource:
    """The kernel source of one assumption for one set (``estimated_dir``: that set's estimates)."""
    from mzsr_tf.testsets import get_kernel
    if assumption == "true":
        return true_source
    if assumption == "estimated":
        return KernelSource.from_folder(estimated_dir)
    if assumption == "bicubic":
        return KernelSource.bicubic()
    if assumption == "g20":
        return KernelSource.fixed(get_kernel("g20").kernel(), "g20 (fixed g^d_2.0)")
    raise ValueError(f"unknown kernel assumption {assumption!r}; known: {', '.join(ASSUMPTIONS)}")


def _psnrs(results: Mapping, set_name: str, column: str) -> Dict[str, float]:
    return {r["image"]: r["columns"][column]["psnr"] for r in results["images"] if r["set"] == set_name}


def compare_assumptions(per_assumption: Mapping[str, Mapping], set_name: str, steps: Sequence[int]) -> Dict:
    """Per step count: each assumption's mean PSNR on ``set_name``, the share of the fallback-to-true gap
    the estimates recover, ``(mean est - mean fallback) / (mean true - mean fallback)``, and how many
    images the estimates do worse than the fallback on."""
    rows = {}
    for n in steps:
        column = f"mzsr_{n}"
        psnr = {a: _psnrs(results, set_name, column) for a, results in per_assumption.items()}
        means = {a: float(np.mean(list(values.values()))) for a, values in psnr.items()}
        row = {"mean_psnr": means, "images": len(psnr["true"])}
        if {"true", "estimated", "bicubic"} <= set(psnr):
            gap = means["true"] - means["bicubic"]
            row["gap_recovered"] = (means["estimated"] - means["bicubic"]) / gap if gap else None
            worse = [image for image, value in psnr["estimated"].items() if value < psnr["bicubic"][image]]
            row["worse_than_fallback"] = len(worse)
            row["worse_than_fallback_share"] = len(worse) / len(psnr["estimated"])
        rows[column] = row
    return rows


def blind_benchmark(testset_dir: str, set_names: Sequence[str], checkpoint: str, estimated_root: str,
                    steps: Sequence[int] = (1, 10), assumptions: Sequence[str] = tuple(ASSUMPTIONS),
                    log: Callable[[str], None] = print) -> Dict:
    """MZSR (``direct_x2`` preset, weights ``checkpoint``) on the ``rk`` sets of ``testset_dir`` under each
    kernel assumption; ``estimated_root/<set>/`` holds each set's estimates (``estimate_folder``).

    Returns ``{"steps", "assumptions", "sets": {set: compare_assumptions(...)}, "kernels": [per image:
    errors of the estimate and of g^d_2.0, PSNR cost of each at the last step count], "estimation":
    {set: estimation.json}, "evaluations": {assumption: mzsr_tf.evaluate results}}``.
    """
    from mzsr_tf.evaluate import evaluate, find_cells
    from mzsr_tf.testsets import get_kernel

    cells = find_cells(testset_dir, ["rk"], list(set_names))
    estimation = {}
    for cell in cells:
        folder = os.path.join(estimated_root, cell.set_name)
        record_path = os.path.join(folder, ESTIMATION_RECORD)
        if not os.path.isfile(record_path):
            raise MetaTestError(f"no estimated kernels for {cell.set_name}: {record_path} is missing (make them with "
                                f"scripts/estimate_kernel.py --inputpath {cell.input_dir} --savepath {folder})")
        with open(record_path) as f:
            estimation[cell.set_name] = json.load(f)
    evaluations = {}
    for assumption in assumptions:
        log(f"--- kernel assumption '{assumption}': {ASSUMPTIONS[assumption]}")
        variant = [dataclasses.replace(cell, kernel_source=assumption_source(
            assumption, cell.kernel_source, os.path.join(estimated_root, cell.set_name))) for cell in cells]
        evaluations[assumption] = evaluate(variant, {"direct_x2": checkpoint}, steps=steps,
                                           baselines=("bicubic",), log=log)
    last = f"mzsr_{max(steps)}"
    g20 = get_kernel("g20").kernel()
    kernel_rows = []
    for cell in cells:
        true_psnr = _psnrs(evaluations["true"], cell.set_name, last)
        for lr_path in list_images(cell.input_dir, "input", error=MetaTestError):
            image = _stem(lr_path)
            true_kernel = cell.kernel_source.kernel_for(lr_path).kernel
            estimated = kernels.load_kernel(os.path.join(estimated_root, cell.set_name, image + ".mat"))
            row = {"set": cell.set_name, "image": image, "error": kernel_error(estimated, true_kernel),
                   "g20_error": kernel_error(g20, true_kernel)}
            for assumption, key in (("estimated", "psnr_cost"), ("g20", "g20_psnr_cost")):
                if assumption in evaluations:
                    row[key] = _psnrs(evaluations[assumption], cell.set_name, last)[image] - true_psnr[image]
            kernel_rows.append(row)
    return {"steps": list(steps), "assumptions": list(assumptions), "checkpoint": checkpoint,
            "sets": {cell.set_name: compare_assumptions(evaluations, cell.set_name, steps) for cell in cells},
            "bicubic_interpolation": {cell.set_name: float(np.mean(list(
                _psnrs(evaluations[assumptions[0]], cell.set_name, "bicubic").values()))) for cell in cells},
            "kernels": kernel_rows, "estimation": estimation, "evaluations": evaluations}


def markdown_table(results: Mapping) -> str:
    """Rows set × kernel assumption, columns MZSR (n) mean PSNR; then per set the gap recovered and the
    images worse than the fallback, the mean kernel errors and seconds per estimate."""
    steps = results["steps"]
    lines = ["| Set | Kernel given to MZSR | " + " | ".join(f"MZSR ({n})" for n in steps) + " |",
             "|---|---|" + "---|" * len(steps)]
    for set_name, rows in results["sets"].items():
        for assumption in results["assumptions"]:
            lines.append(f"| {set_name} | {ASSUMPTIONS[assumption]} | "
                         + " | ".join(f"{rows[f'mzsr_{n}']['mean_psnr'][assumption]:.2f}" for n in steps) + " |")
        lines.append(f"| {set_name} | (bicubic interpolation) | "
                     + " | ".join(f"{results['bicubic_interpolation'][set_name]:.2f}" for _ in steps) + " |")
    lines += ["", "| Set | images | " + " | ".join(f"gap recovered ({n}) | worse than fallback ({n})" for n in steps)
              + " | kernel error: estimated | kernel error: g^d_2.0 | seconds per estimate |",
              "|---|---|" + "---|---|" * len(steps) + "---|---|---|"]
    for set_name, rows in results["sets"].items():
        errors = [r for r in results["kernels"] if r["set"] == set_name]
        cells = []
        for n in steps:
            row = rows[f"mzsr_{n}"]
            gap = row.get("gap_recovered")
            cells.append("–" if gap is None else f"{100 * gap:.0f}%")
            cells.append(f"{row.get('worse_than_fallback', '–')} ({100 * row.get('worse_than_fallback_share', 0):.0f}%)")
        lines.append(f"| {set_name} | {rows[f'mzsr_{steps[0]}']['images']} | " + " | ".join(cells)
                     + f" | {np.mean([r['error'] for r in errors]):.3f} | {np.mean([r['g20_error'] for r in errors]):.3f}"
                     f" | {results['estimation'][set_name]['seconds_per_image']:.1f} |")
    return "\n".join(lines)


def write_blind_results(results: Mapping, out_dir: str, command: Optional[str] = None) -> Dict[str, str]:
    """``blind.json`` (without the per-assumption evaluations' figure data), ``blind.md`` and the kernel
    figure ``kernel_errors.png``; returns their paths."""
    from mzsr_tf import plots
    paths = {"json": os.path.join(out_dir, "blind.json"), "md": os.path.join(out_dir, "blind.md")}
    serialisable = dict(results, command=command,
                        evaluations={a: {k: v for k, v in r.items() if k != "figures"}
                                     for a, r in results["evaluations"].items()})
    atomic.write_json(paths["json"], serialisable)
    text = ["# Blind benchmark: MZSR on images with a random kernel each", "",
            f"- checkpoint: `{results['checkpoint']}`"] + ([f"- command: `{command}`"] if command else []) + [
            "", "PSNR (dB) on the Y channel, border of 2 pixels shaved.", "", markdown_table(results), ""]
    atomic.write_text(paths["md"], "\n".join(text))
    items = []
    for row in results["kernels"]:
        estimated_file = os.path.join(os.path.dirname(results["estimation"][row["set"]]["images"][row["image"]]["kernel"]),
                                      row["image"] + ".mat")
        true_file = next(r["kernel_file"] for r in results["evaluations"]["true"]["images"]
                         if r["set"] == row["set"] and r["image"] == row["image"])
        items.append(dict(row, true=kernels.load_kernel(true_file), estimated=kernels.load_kernel(estimated_file)))
    paths["figure"] = plots.plot_kernel_errors(items, os.path.join(out_dir, "kernel_errors.png"))
    return paths
