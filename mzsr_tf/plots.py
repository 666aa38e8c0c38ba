"""Figures of an evaluation (matplotlib ``Figure`` objects written by the Agg canvas: no pyplot, no
display, no global backend switch).

* ``plot_psnr_vs_steps``: per kernel, mean PSNR of MZSR against the number of adaptation steps for
  each image set, with bicubic interpolation (dashed), the ZSSR-like baseline (star, at its mean
  number of steps) and the paper's MZSR (1) / (10) (open circles) where known;
* ``plot_crops``: side-by-side crops (LR, bicubic, MZSR (n)..., GT) of chosen images, the crop
  placed where the GT has the most detail (``choose_crop`` on ``detail_map``), whatever the methods do.
"""
from __future__ import annotations

import io
import os
from typing import Mapping, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mzsr_tf import atomic
from mzsr_tf.metrics import rgb2y


def math_kernel_name(paper_name: str) -> str:
    """``g^d_2.0 (x4)`` as matplotlib mathtext: ``$g^{d}_{2.0}$ (x4)``."""
    symbol, _, rest = paper_name.partition(" ")
    base, _, tail = symbol.partition("^")
    sup, _, sub = tail.partition("_")
    text = f"${base}^{{{sup}}}_{{{sub}}}$" if sup and sub else symbol
    return f"{text} {rest}".strip()


def _title(key: str) -> str:
    if key.startswith("mzsr_"):
        return f"MZSR ({key[5:]})"
    return {"bicubic": "Bicubic", "zssr": "ZSSR", "lr": "LR", "gt": "GT"}.get(key, key)


def _step_count_order(key: str):
    """Sort ``mzsr_N`` keys by N, others after them by name."""
    suffix = key.rsplit("_", 1)[-1]
    return (0, int(suffix), key) if key.startswith("mzsr_") and suffix.isdigit() else (1, 0, key)


def plot_psnr_vs_steps(cells: Sequence[Mapping], steps: Sequence[int], path: str) -> str:
    """One panel per kernel; ``cells`` as ``evaluate.summarize`` returns them. Returns ``path``."""
    kernels = list(dict.fromkeys(cell["kernel"] for cell in cells))
    columns = min(3, len(kernels))
    rows = -(-len(kernels) // columns)
    figure = Figure(figsize=(4.8 * columns, 3.8 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, kernel in zip(axes.flat, kernels):
        mine = [cell for cell in cells if cell["kernel"] == kernel]
        for colour, cell in zip(colours * 10, mine):
            values = [cell["columns"][f"mzsr_{n}"]["psnr"] for n in steps]
            panel.plot(steps, values, "o-", color=colour, label=f"{cell['set']} MZSR")
            if "bicubic" in cell["columns"]:
                panel.axhline(cell["columns"]["bicubic"]["psnr"], color=colour, linestyle="--", linewidth=1,
                              label=f"{cell['set']} bicubic")
            if "zssr" in cell["columns"]:
                zssr = cell["columns"]["zssr"]
                panel.plot([zssr["steps"]], [zssr["psnr"]], "*", color=colour, markersize=11,
                           label=f"{cell['set']} ZSSR")
            paper = [(n, cell["paper"][f"mzsr_{n}"]["psnr"]) for n in (1, 10) if f"mzsr_{n}" in cell["paper"]]
            if paper:
                panel.plot(*zip(*paper), "o", markerfacecolor="none", color=colour, markersize=9,
                           label=f"{cell['set']} paper")
        panel.set_xscale("symlog", linthresh=1)
        ticks = sorted(set(steps) | {round(c["columns"]["zssr"]["steps"]) for c in mine if "zssr" in c["columns"]})
        panel.set_xlim(-0.3, 1.5 * ticks[-1])
        panel.set_xticks(ticks, [str(t) for t in ticks])
        panel.set_xlabel("adaptation steps")
        panel.set_ylabel("PSNR (dB)")
        panel.set_title(math_kernel_name(mine[0]["paper_kernel"]) + f" ({kernel})")
        panel.grid(True, alpha=0.3)
        panel.legend(fontsize=7)
    for panel in list(axes.flat)[len(kernels):]:
        panel.axis("off")
    return _save(figure, path)


def detail_map(image: np.ndarray) -> np.ndarray:
    """``|dY/dx| + |dY/dy|`` of a uint8 RGB image's Y channel (forward differences, last row/column
    repeated), float64 ``[H, W]``."""
    y = rgb2y(image).astype(np.float64)
    return np.abs(np.diff(y, axis=1, append=y[:, -1:])) + np.abs(np.diff(y, axis=0, append=y[-1:, :]))


def choose_crop(score: np.ndarray, size: int, align: int = 1) -> Tuple[int, int]:
    """Top-left ``(row, col)`` of the ``size`` x ``size`` window with the largest sum of ``score``.

    ``score`` is ``[H, W]``; the first maximum in row-major order wins; corners are multiples of
    ``align`` (the scale, so the window maps onto whole LR pixels).  ``size`` is reduced to the
    image if it is larger.
    """
    size = min(size, score.shape[0], score.shape[1])
    table = np.pad(np.asarray(score, np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    rows = np.arange(0, sums.shape[0], align)
    cols = np.arange(0, sums.shape[1], align)
    aligned = sums[np.ix_(rows, cols)]
    r, c = np.unravel_index(np.argmax(aligned), aligned.shape)
    return int(rows[r]), int(cols[c])


def plot_crops(items: Sequence[Mapping], keys: Sequence[str], path: str, crop: int = 96,
               title: Optional[str] = None) -> str:
    """A grid of crops: one row per item, columns LR, ``keys`` (e.g. bicubic, mzsr_1, mzsr_10), GT.

    Each item holds ``lr`` (float HWC in [0, 1]), ``gt`` (uint8 HWC, or float in [0, 1] as
    ``evaluate.figure_item`` gives it), ``outputs`` (key -> uint8 HWC of the GT's shape), ``set`` and
    ``image`` names and optionally ``scores`` (key -> PSNR).
    """
    panels = ["lr"] + list(keys) + ["gt"]
    figure = Figure(figsize=(2.2 * len(panels), 2.9 * len(items)))
    axes = figure.subplots(len(items), len(panels), squeeze=False)
    for row, item in zip(axes, items):
        gt = item["gt"]
        scale = gt.shape[0] / item["lr"].shape[0]
        align = max(1, int(round(scale)))
        top, left = choose_crop(detail_map(gt), crop, align)
        size = min(crop, gt.shape[0], gt.shape[1])
        for axis, key in zip(row, panels):
            if key == "lr":
                lr_box = (slice(top // align, (top + size) // align), slice(left // align, (left + size) // align))
                image = np.clip(item["lr"][lr_box], 0, 1)
            elif key == "gt":
                image = gt[top:top + size, left:left + size]
            else:
                image = item["outputs"][key][top:top + size, left:left + size]
            axis.imshow(image, interpolation="nearest")
            label = _title(key)
            score = item.get("scores", {}).get(key)
            if score is not None:
                label += f"\n{score:.2f} dB"
            axis.set_title(label, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
        row[0].set_ylabel(f"{item['set']}/{item['image']}", fontsize=8)
    if title:
        figure.suptitle(math_kernel_name(title))
    return _save(figure, path)


def _save(figure, path: str) -> str:
    """Render ``figure`` in memory (format from the extension, PNG without one) and write it atomically."""
    figure.tight_layout()
    image = io.BytesIO()
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    figure.savefig(image, dpi=110, format=extension or "png")
    return atomic.write_bytes(path, image.getvalue())


def phase_starts(rows: Sequence[Mapping]) -> list:
    """The meta-iterations where the later phases of ``curves.chain`` rows start: each phase's first row's
    ``step - phase_step`` (the checkpoint it started from, not its first scored one)."""
    return [row["step"] - row.get("phase_step", 0) for before, row in zip(rows, rows[1:])
            if row.get("phase", 0) != before.get("phase", 0)]


def plot_learning_curve(rows: Sequence[Mapping], path: str, title: Optional[str] = None,
                        reference: Optional[Mapping[str, Mapping[str, float]]] = None) -> str:
    """PSNR vs meta-iteration, one panel per folder, one line per step count (``curves.learning_curve``
    rows); ``reference`` draws horizontal lines, e.g. ``{"Set5": {"paper MZSR (1)": 35.20}}``.
    Rows of ``curves.chain`` get a dotted vertical line where each later phase starts (``phase_starts``); a
    folder or step count missing from some rows (phases scored differently) is drawn where present."""
    folders = list(dict.fromkeys(folder for row in rows for folder in row["scores"]))
    figure = Figure(figsize=(5.2 * len(folders), 3.8))
    axes = figure.subplots(1, len(folders), squeeze=False)[0]
    iterations = [row["step"] for row in rows]
    starts = phase_starts(rows)
    for panel, folder in zip(axes, folders):
        keys = dict.fromkeys(key for row in rows for key in row["scores"].get(folder, {}))
        for key in sorted(keys, key=_step_count_order):
            present = [row for row in rows if key in row["scores"].get(folder, {})]
            panel.plot([row["step"] for row in present], [row["scores"][folder][key] for row in present],
                       "o-", markersize=3, label=_title(key))
        for start in starts:
            panel.axvline(start, linestyle=":", linewidth=1, color="black")
        for label, value in (reference or {}).get(folder, {}).items():
            panel.axhline(value, linestyle="--", linewidth=1, color="grey")
            panel.annotate(label, (iterations[0], value), fontsize=7, va="bottom")
        panel.set_xlabel("meta-iteration")
        panel.set_ylabel("PSNR (dB, Y)")
        panel.set_title(folder if not title else f"{title}: {folder}")
        panel.grid(True, alpha=0.3)
        panel.legend(fontsize=8)
    return _save(figure, path)


def plot_kernel(kernel: np.ndarray, path: str, title: Optional[str] = None) -> str:
    """A blur kernel (2-D, e.g. float64 ``[21, 21]``) as a small heat map with a colour bar."""
    figure = Figure(figsize=(2.6, 2.3))
    axes = figure.subplots()
    shown = axes.imshow(np.asarray(kernel), cmap="viridis", interpolation="nearest")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_kernel_errors(items: Sequence[Mapping], path: str, shown: int = 4) -> str:
    """The blind benchmark's kernel figure: left, per image, the estimated kernel's error (L2 distance
    to the true kernel) against the PSNR it costs (MZSR with estimated minus true kernel, dB), beside
    the fixed g^d_2.0 guess's error; right, the true and estimated kernels of the first ``shown`` images.

    ``items``: per image ``{"image", "true", "estimated" (2-D kernels), "error", "g20_error",
    "psnr_cost"}``.
    """
    shown = min(shown, len(items))
    figure = Figure(figsize=(4.2 + 1.3 * shown, 3.2))
    grid = figure.add_gridspec(2, 2 + shown, width_ratios=[3.2, 0.2] + [1.0] * shown)
    scatter = figure.add_subplot(grid[:, 0])
    scatter.scatter([i["error"] for i in items], [i["psnr_cost"] for i in items], s=10, label="estimated")
    scatter.scatter([i["g20_error"] for i in items], [i["g20_psnr_cost"] for i in items], s=10, marker="x",
                    label="fixed $g^d_{2.0}$")
    scatter.axhline(0.0, color="grey", linewidth=1)
    scatter.set_xlabel("kernel error (L2 to the true kernel)")
    scatter.set_ylabel("PSNR vs true kernel, MZSR (10) (dB)")
    scatter.legend(fontsize=7)
    scatter.grid(True, alpha=0.3)
    for column, item in enumerate(items[:shown]):
        for row, key in enumerate(("true", "estimated")):
            axes = figure.add_subplot(grid[row, 2 + column])
            axes.imshow(np.asarray(item[key]), cmap="viridis", interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(f"{item['image']}: {key}", fontsize=6)
    figure.tight_layout()
    return _save(figure, path)


def plot_before_after(items: Sequence[Mapping], path: str, crop: int = 128) -> str:
    """Inputs without GT: per row, a crop of the bicubic upscale, the same crop of the SR output and the
    kernel the meta-test used (if any), the crop placed where the SR output has the most detail.

    Each item: ``image`` (name), ``bicubic`` and ``sr`` (uint8 HWC of one shape), ``kernel`` (2-D or None),
    ``kernel_title`` (e.g. ``"estimated kernel"``).
    """
    figure = Figure(figsize=(7.4, 2.7 * len(items)))
    axes = figure.subplots(len(items), 3, squeeze=False, gridspec_kw={"width_ratios": [1, 1, 0.75]})
    for row, item in zip(axes, items):
        top, left = choose_crop(detail_map(item["sr"]), crop)
        size = min(crop, item["sr"].shape[0], item["sr"].shape[1])
        for axis, key, label in ((row[0], "bicubic", "bicubic"), (row[1], "sr", "MZSR")):
            axis.imshow(item[key][top:top + size, left:left + size], interpolation="nearest")
            axis.set_title(f"{item['image']}: {label}", fontsize=8)
        if item.get("kernel") is not None:
            row[2].imshow(np.asarray(item["kernel"]), cmap="viridis", interpolation="nearest")
            row[2].set_title(item.get("kernel_title", "kernel"), fontsize=8)
        for axis in row:
            axis.set_xticks([])
            axis.set_yticks([])
    return _save(figure, path)
