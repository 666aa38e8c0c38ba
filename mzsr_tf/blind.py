"""Images without a kernel: estimate each input's blur kernel, and the blind benchmark.

MZSR needs the blur kernel of its input to make the son.  When the input comes without one, the
kernel is estimated from the input alone (``make_estimator``: ``mzsr_tf.edge_kernel``, the default, or
``mzsr_tf.kernel_estimation``, KernelGAN) and the meta-test runs with the estimate:

* ``estimate_image``: one image, its kernel saved as ``<image stem>.mat`` (key ``kernel``, 21 x 21) and
  a small figure ``<image stem>_kernel.png``, with progress lines (estimation is the slowest step of
  a blind run);
* ``estimate_folder``: every image of a folder, and ``estimation.json`` with the seconds per image
  (``scripts/estimate_kernel.py``);
* ``EstimatingKernels``: a ``KernelSource`` that estimates each input's kernel when the meta-test asks
  for it and saves it beside the SR output (``scripts/main.py --estimate-kernel``).

The blind benchmark (``blind_benchmark``, ``scripts/blind_benchmark.py``) runs MZSR on a test set with
one random kernel per image (``make_testsets.py --kernels rk``) under these assumptions about the
kernel: the true per-image kernels, each estimator's, none (the bicubic fallback, ``--kernelpath
''``) and a fixed g^d_2.0 for every image; it reports per set and step count the mean PSNR of each,
how much of the gap between the fallback and the true kernels the estimates recover, on how many
images the estimates do worse than the fallback, the kernel errors and the seconds per estimate.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from mzsr_tf import atomic, kernels
from mzsr_tf.config import DEFAULT_SON_GRID, read_json_object
from mzsr_tf.data.images import list_images
from mzsr_tf.edge_kernel import EdgeKernelConfig, EdgeKernelError, EdgeKernelEstimator
from mzsr_tf.kernel_estimation import ImageTooSmallError, KernelEstimator, KernelGANConfig, kernel_error
from mzsr_tf.kernels import ImageKernel, KernelSource
from mzsr_tf.meta_test import MetaTestError, read_rgb

ESTIMATION_RECORD = "estimation.json"
FIGURE_SUFFIX = "_kernel.png"
PROGRESS_LINES = 4
"""How many progress lines one image's estimation prints (at each quarter of its iterations)."""
ESTIMATORS = {
    "edges": "Gaussian fitted to re-blur gradient ratios at edges (mzsr_tf.edge_kernel; < 1 s per image)",
    "kernelgan": "KernelGAN (mzsr_tf.kernel_estimation; about 25-35 s per BSD100 image on 2 cores)",
}
"""The kernel estimators by name (``--estimator``); the first is the default (the better one on the blind
benchmark, README "Images without a kernel")."""


def make_estimator(name: str, iterations: Optional[int] = None):
    """The estimator called ``name`` (``ESTIMATORS``) with its default settings; ``iterations`` sets
    KernelGAN's (the edge estimator has none).  An object with ``.name``, ``.config``, ``.minimum_side``
    (the smallest image side it accepts) and ``.estimate(lr, scale, seed, progress) -> kernel``."""
    if name == "kernelgan":
        config = KernelGANConfig()
        if iterations is not None:
            config = dataclasses.replace(config, iterations=iterations)
        return KernelEstimator(config)
    if name == "edges":
        if iterations is not None:
            raise ValueError("the edges estimator has no iterations to set (it is not iterative)")
        return EdgeKernelEstimator(EdgeKernelConfig())
    raise ValueError(f"unknown kernel estimator {name!r}; known: {', '.join(ESTIMATORS)}")


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


def check_estimable(image_paths: Sequence[str], estimator, images: Optional[Sequence] = None) -> None:
    """Every image must be an 8-bit RGB file large enough for ``estimator``; the first that is not is a
    one-line ``MetaTestError`` naming it (before any estimation starts)."""
    smallest = estimator.minimum_side
    for index, path in enumerate(image_paths):
        shape = (images[index] if images is not None else read_rgb(path)).shape
        if min(shape[:2]) < smallest:
            raise MetaTestError(f"input {path} ({shape[0]}x{shape[1]}) is too small to estimate its kernel from: "
                                f"the estimator needs at least {smallest}x{smallest} pixels")


def estimate_image(image_path: str, save_dir: str, scale: float, estimator,
                   seed: int = 0, log: Callable[[str], None] = print) -> EstimatedKernel:
    """Estimate the blur kernel of the image at ``image_path`` with ``estimator`` (``make_estimator``; one
    serves many images: KernelGAN's training step is traced once) and save ``<stem>.mat`` and ``<stem>_kernel.png`` in ``save_dir``;
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
    except (ImageTooSmallError, EdgeKernelError) as error:
        raise MetaTestError(f"input {image_path}: {error}") from None
    seconds = time.perf_counter() - start
    from mzsr_tf import plots
    os.makedirs(save_dir, exist_ok=True)
    kernel_file = os.path.join(save_dir, name + ".mat")
    kernels.save_kernel(kernel_file, kernel)
    try:  # the kernel and its figure appear together or not at all
        figure_file = plots.plot_kernel(kernel, os.path.join(save_dir, name + FIGURE_SUFFIX),
                                        title=f"{name}: estimated kernel (x{scale:g})")
    except Exception:
        _remove_files([kernel_file])
        raise
    return EstimatedKernel(name, kernel, kernel_file, figure_file, seconds)


def estimation_record(estimates: Sequence[EstimatedKernel], scale: float, estimator, seed: int) -> Dict:
    """What ``estimation.json`` holds: the estimator and its settings, and per image its files and seconds."""
    name = estimator.name
    return {"estimator": name, "estimator_description": ESTIMATORS[name], "scale": scale, "seed": seed,
            "config": dataclasses.asdict(estimator.config),
            "seconds_per_image": float(np.mean([e.seconds for e in estimates])) if estimates else None,
            "images": {e.image: {"kernel": e.kernel_file, "figure": e.figure_file, "seconds": e.seconds}
                       for e in estimates}}


def estimate_folder(input_dir: str, save_dir: str, scale: float, estimator, seed: int = 0,
                    log: Callable[[str], None] = print) -> Dict:
    """Estimate the kernel of every image in ``input_dir`` (sorted) with ``estimator`` (``make_estimator``),
    save them in ``save_dir`` and write ``save_dir/estimation.json``; returns its content.  Every image
    is checked before the first estimation."""
    paths = list_images(input_dir, "input", error=MetaTestError)
    check_estimable(paths, estimator)
    atomic.check_output_folder(save_dir, "--savepath")
    estimates: List[EstimatedKernel] = []
    try:
        for index, path in enumerate(paths):
            estimate = estimate_image(path, save_dir, scale, estimator, seed, log)
            estimates.append(estimate)
            log(f"[{index + 1}/{len(paths)}] {estimate.image}: {estimate.seconds:.1f} s -> {estimate.kernel_file}")
        record = estimation_record(estimates, scale, estimator, seed)
        atomic.write_json(os.path.join(save_dir, ESTIMATION_RECORD), record)
    except OSError:  # a failed write (a full disk): the kernels without their record go too
        _remove_files([file for e in estimates for file in (e.kernel_file, e.figure_file)])
        raise
    return record


def _remove_files(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


class EstimatingKernels:
    """``--estimate-kernel``: a ``KernelSource`` (``.source``) that estimates each input's kernel when
    the meta-test asks for it, saving it in ``save_dir``; ``.estimates`` holds those made so far and
    ``.record()`` what ``results.json`` records of them."""

    def __init__(self, save_dir: str, scale: float, estimator, seed: int = 0, log: Callable[[str], None] = print):
        self.save_dir, self.scale, self.estimator, self.seed, self.log = save_dir, scale, estimator, seed, log
        self.estimates: List[EstimatedKernel] = []
        self.source = KernelSource(save_dir, f"kernels estimated from each input ({estimator.name}), "
                                   f"saved in {save_dir}", self._estimate)

    def _estimate(self, image_path: str) -> ImageKernel:
        estimate = estimate_image(image_path, self.save_dir, self.scale, self.estimator, self.seed, self.log)
        self.estimates.append(estimate)
        self.log(f"estimated the kernel of {estimate.image} in {estimate.seconds:.1f} s -> {estimate.kernel_file}")
        return ImageKernel(estimate.kernel, estimate.kernel_file)

    def record(self) -> Dict:
        return estimation_record(self.estimates, self.scale, self.estimator, self.seed)


# --------------------------------------------------------------------------- the blind benchmark

FIXED_ASSUMPTIONS = {
    "true": "the true per-image kernels",
    "bicubic": "no kernel: the bicubic fallback (--kernelpath '')",
    "g20": "a fixed g^d_2.0 for every image",
}
"""The kernel assumptions of the blind benchmark besides the estimates (``estimated:<estimator>``)."""


def assumption_title(assumption: str) -> str:
    """One line for a table row: ``FIXED_ASSUMPTIONS``' text, or ``estimated kernels (<estimator>)``."""
    if assumption.startswith("estimated:"):
        return f"estimated kernels ({assumption.partition(':')[2]})"
    return FIXED_ASSUMPTIONS[assumption]


def assumption_source(assumption: str, true_source: KernelSource, estimated_dir: Optional[str]) -> KernelSource:
    """The kernel source of one assumption for one set (``estimated_dir``: that set's estimates)."""
    from mzsr_tf.testsets import get_kernel
    if assumption == "true":
        return true_source
    if assumption.startswith("estimated:"):
        return KernelSource.from_folder(estimated_dir)
    if assumption == "bicubic":
        return KernelSource.bicubic()
    if assumption == "g20":
        return KernelSource.fixed(get_kernel("g20").kernel(), "g20 (fixed g^d_2.0)")
    raise ValueError(f"unknown kernel assumption {assumption!r}; known: {', '.join(FIXED_ASSUMPTIONS)}, "
                     "estimated:<name>")


def _psnrs(results: Mapping, set_name: str, column: str) -> Dict[str, float]:
    return {r["image"]: r["columns"][column]["psnr"] for r in results["images"] if r["set"] == set_name}


def compare_assumptions(per_assumption: Mapping[str, Mapping], set_name: str, steps: Sequence[int]) -> Dict:
    """Per step count: each assumption's mean PSNR on ``set_name`` and, for each ``estimated:<name>``, the
    share of the fallback-to-true gap it recovers, ``(mean est - mean fallback) / (mean true - mean
    fallback)``, and how many images it does worse than the fallback on (``gap_recovered[name]``,
    ``worse_than_fallback[name]``, ``worse_than_fallback_share[name]``)."""
    rows = {}
    for n in steps:
        column = f"mzsr_{n}"
        psnr = {a: _psnrs(results, set_name, column) for a, results in per_assumption.items()}
        means = {a: float(np.mean(list(values.values()))) for a, values in psnr.items()}
        row = {"mean_psnr": means, "images": len(psnr["true"]), "gap_recovered": {}, "worse_than_fallback": {},
               "worse_than_fallback_share": {}}
        for assumption in psnr:
            if not assumption.startswith("estimated:") or "bicubic" not in psnr:
                continue
            name = assumption.partition(":")[2]
            gap = means["true"] - means["bicubic"]
            row["gap_recovered"][name] = (means[assumption] - means["bicubic"]) / gap if gap else None
            worse = [image for image, value in psnr[assumption].items() if value < psnr["bicubic"][image]]
            row["worse_than_fallback"][name] = len(worse)
            row["worse_than_fallback_share"][name] = len(worse) / len(psnr[assumption])
        rows[column] = row
    return rows


def reusable_evaluations(previous: Optional[Mapping], checkpoint: str, steps: Sequence[int],
                         set_names: Sequence[str], estimation: Optional[Mapping] = None) -> Dict[str, Dict]:
    """The evaluations of an earlier ``blind.json`` that this benchmark can reuse: same checkpoint and step
    counts, made with the meta-test's default son grid (``DEFAULT_SON_GRID``), covering every set asked for
    (restricted to those sets), and for an estimator's row the same estimates (its ``estimation.json`` records,
    ``estimation[name][set]``, equal to the earlier run's); none if ``previous`` is None."""
    from mzsr_tf.evaluate import son_grid_of

    def same_estimates(assumption):
        if not assumption.startswith("estimated:"):
            return True
        name = assumption.partition(":")[2]
        earlier, now = previous.get("estimation", {}).get(name, {}), (estimation or {}).get(name, {})
        return all(set_name in earlier and earlier[set_name] == now.get(set_name) for set_name in set_names)

    if not previous or previous.get("checkpoint") != checkpoint or list(previous.get("steps", [])) != list(steps):
        return {}
    reusable = {}
    for assumption, results in previous.get("evaluations", {}).items():
        if (son_grid_of(results) == DEFAULT_SON_GRID and set(set_names) <= {r["set"] for r in results["images"]}
                and same_estimates(assumption)):
            reusable[assumption] = dict(results, images=[r for r in results["images"] if r["set"] in set_names],
                                        cells=[c for c in results["cells"] if c["set"] in set_names])
    return reusable


def blind_benchmark(testset_dir: str, set_names: Sequence[str], checkpoint: str, estimated: Mapping[str, str],
                    steps: Sequence[int] = (1, 10), log: Callable[[str], None] = print,
                    previous: Optional[Mapping] = None) -> Dict:
    """MZSR (``direct_x2`` preset, weights ``checkpoint``) on the ``rk`` sets of ``testset_dir`` given the
    true kernels, each estimator's (``estimated[name]/<set>/``, made by ``estimate_folder``), none
    (bicubic fallback) and a fixed g^d_2.0.

    Returns ``{"steps", "assumptions", "sets": {set: compare_assumptions(...)}, "bicubic_interpolation",
    "kernels": [per image and estimator: kernel errors of the estimate and of g^d_2.0, PSNR cost of each
    at the last step count], "estimation": {name: {set: estimation.json}}, "evaluations": {assumption:
    mzsr_tf.evaluate results}}``.  ``previous``: an earlier run's ``blind.json``, whose evaluations of the same
    checkpoint, step counts and sets are reused (``reusable_evaluations``) instead of run again.
    """
    from mzsr_tf.evaluate import evaluate, find_cells
    from mzsr_tf.testsets import get_kernel

    cells = find_cells(testset_dir, ["rk"], list(set_names))
    estimation: Dict[str, Dict] = {}
    for name, root in estimated.items():
        estimation[name] = {}
        for cell in cells:
            record_path = os.path.join(root, cell.set_name, ESTIMATION_RECORD)
            if not os.path.isfile(record_path):
                raise MetaTestError(f"no {name} estimates for {cell.set_name}: {record_path} is missing (make them "
                                    f"with scripts/estimate_kernel.py --estimator {name} --inputpath {cell.input_dir} "
                                    f"--savepath {os.path.join(root, cell.set_name)})")
            estimation[name][cell.set_name] = read_json_object(record_path, "kernel estimates", MetaTestError)
    assumptions = ["true"] + [f"estimated:{name}" for name in estimated] + ["bicubic", "g20"]
    reusable = reusable_evaluations(previous, checkpoint, steps, [cell.set_name for cell in cells], estimation)
    evaluations = {}
    for assumption in assumptions:
        if assumption in reusable:
            log(f"--- kernel given to MZSR: {assumption_title(assumption)}: reused from the earlier results")
            evaluations[assumption] = reusable[assumption]
            continue
        log(f"--- kernel given to MZSR: {assumption_title(assumption)}")
        root = estimated.get(assumption.partition(":")[2])
        variant = [dataclasses.replace(cell, kernel_source=assumption_source(
            assumption, cell.kernel_source, os.path.join(root, cell.set_name) if root else None)) for cell in cells]
        evaluations[assumption] = evaluate(variant, {"direct_x2": checkpoint}, steps=steps,
                                           baselines=("bicubic",), log=log)
    last = f"mzsr_{max(steps)}"
    g20 = get_kernel("g20").kernel()
    kernel_rows = []
    for cell in cells:
        true_psnr = _psnrs(evaluations["true"], cell.set_name, last)
        g20_psnr = _psnrs(evaluations["g20"], cell.set_name, last)
        estimate_psnr = {name: _psnrs(evaluations[f"estimated:{name}"], cell.set_name, last) for name in estimated}
        for lr_path in list_images(cell.input_dir, "input", error=MetaTestError):
            image = _stem(lr_path)
            true_kernel, true_file = cell.kernel_source.kernel_for(lr_path)
            for name, root in estimated.items():
                estimate_path = os.path.join(root, cell.set_name, image + ".mat")
                kernel_rows.append({
                    "set": cell.set_name, "image": image, "estimator": name,
                    "true_file": true_file, "estimate_file": estimate_path,
                    "error": kernel_error(kernels.load_kernel(estimate_path), true_kernel),
                    "g20_error": kernel_error(g20, true_kernel),
                    "psnr_cost": estimate_psnr[name][image] - true_psnr[image],
                    "g20_psnr_cost": g20_psnr[image] - true_psnr[image]})
    return {"steps": list(steps), "assumptions": assumptions, "checkpoint": checkpoint,
            "sets": {cell.set_name: compare_assumptions(evaluations, cell.set_name, steps) for cell in cells},
            "bicubic_interpolation": {cell.set_name: float(np.mean(list(
                _psnrs(evaluations["true"], cell.set_name, "bicubic").values()))) for cell in cells},
            "kernels": kernel_rows, "estimation": estimation, "evaluations": evaluations}


def markdown_table(results: Mapping) -> str:
    """Rows set × kernel assumption, columns MZSR (n) mean PSNR; then per set and estimator the gap
    recovered, the images worse than the fallback, the mean kernel errors and the seconds per estimate."""
    steps = results["steps"]
    lines = ["| Set | Kernel given to MZSR | " + " | ".join(f"MZSR ({n})" for n in steps) + " |",
             "|---|---|" + "---|" * len(steps)]
    for set_name, rows in results["sets"].items():
        for assumption in results["assumptions"]:
            lines.append(f"| {set_name} | {assumption_title(assumption)} | "
                         + " | ".join(f"{rows[f'mzsr_{n}']['mean_psnr'][assumption]:.2f}" for n in steps) + " |")
        lines.append(f"| {set_name} | (bicubic interpolation, no MZSR) | "
                     + " | ".join(f"{results['bicubic_interpolation'][set_name]:.2f}" for _ in steps) + " |")
    lines += ["", "| Set | estimator | images | " + " | ".join(
        f"gap recovered ({n}) | worse than fallback ({n})" for n in steps)
        + " | kernel error: estimate | kernel error: g^d_2.0 | seconds per estimate |",
        "|---|---|---|" + "---|---|" * len(steps) + "---|---|---|"]
    for set_name, rows in results["sets"].items():
        for name in results["estimation"]:
            errors = [r for r in results["kernels"] if r["set"] == set_name and r["estimator"] == name]
            cells = []
            for n in steps:
                row = rows[f"mzsr_{n}"]
                gap = row["gap_recovered"].get(name)
                cells.append("–" if gap is None else f"{100 * gap:.0f}%")
                cells.append(f"{row['worse_than_fallback'][name]} ({100 * row['worse_than_fallback_share'][name]:.0f}%)")
            lines.append(f"| {set_name} | {name} | {rows[f'mzsr_{steps[0]}']['images']} | " + " | ".join(cells)
                         + f" | {np.mean([r['error'] for r in errors]):.3f} | "
                           f"{np.mean([r['g20_error'] for r in errors]):.3f} | "
                           f"{results['estimation'][name][set_name]['seconds_per_image']:.1f} |")
    return "\n".join(lines)


def write_blind_results(results: Mapping, out_dir: str, command: Optional[str] = None) -> Dict[str, str]:
    """``blind.json`` (without the evaluations' figure data), ``blind.md`` and one kernel figure per
    estimator ``kernel_errors_<name>.png``; returns their paths."""
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
    for name in results["estimation"]:
        items = [dict(row, true=kernels.load_kernel(row["true_file"]), estimated=kernels.load_kernel(row["estimate_file"]))
                 for row in results["kernels"] if row["estimator"] == name]
        paths[f"figure_{name}"] = plots.plot_kernel_errors(items, os.path.join(out_dir, f"kernel_errors_{name}.png"))
    return paths
