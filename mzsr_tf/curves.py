"""Learning curves: the meta-test of every checkpoint of a training run on fixed image folders.

Used to watch meta-training and to choose the checkpoint to ship: for each checkpoint, each folder
(LR inputs, GT, kernel) is meta-tested once for ``max(steps)`` steps and scored after each of
``steps`` (``MetaTester.adapt_at_steps``), so MZSR (1) and MZSR (10) cost one 10-step run.
Select on a validation folder that is not the one you report (e.g. some of BSD100, not Set5).
``chain`` joins the curves of a model trained in phases (a run started from a checkpoint of another).
"""
from __future__ import annotations

import glob
import json
import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mzsr_tf import metrics
from mzsr_tf.adaptation import MetaTester
from mzsr_tf.checkpoints import load_weights
from mzsr_tf.config import AdaptationConfig
from mzsr_tf.kernels import load_kernel
from mzsr_tf.meta_test import paired_paths, read_pair
from mzsr_tf.model import MZSRNet

Folder = Tuple[str, str, str]  # (LR folder, GT folder, kernel .mat)


def run_checkpoints(run_dir: str) -> List[Tuple[int, str]]:
    """``(step, prefix)`` of every ``ckpt-N`` checkpoint in ``run_dir``, by step."""
    found = []
    for index in glob.glob(os.path.join(run_dir, "ckpt-*.index")):
        match = re.search(r"ckpt-(\d+)\.index$", index)
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    if not found:
        raise ValueError(f"no ckpt-N checkpoints in {run_dir}")
    return sorted(found)


def load_folder(folder: Folder, scale: float, limit: int = 0):
    """``(inputs, modcropped GTs, kernel)`` of one folder, checked pairwise; ``limit`` > 0 keeps the first N."""
    lr_dir, gt_dir, kernel_path = folder
    pairs = paired_paths(lr_dir, gt_dir)
    if limit:
        pairs = pairs[:limit]
    inputs, gts = map(list, zip(*(read_pair(lr_path, gt_path, scale) for lr_path, gt_path in pairs)))
    return inputs, gts, load_kernel(kernel_path)


def score_checkpoint(checkpoint: str, folders: Mapping[str, Tuple[list, list, np.ndarray]],
                     config: AdaptationConfig, steps: Sequence[int] = (1, 10)) -> Dict[str, Dict[str, float]]:
    """Mean PSNR (Y, dB) after each of ``steps`` on each loaded folder: ``{folder: {"mzsr_1": ..}}``."""
    model = MZSRNet()
    load_weights(model, checkpoint)
    tester = MetaTester(model.trainable_variables, config)
    scores = {}
    for name, (inputs, gts, kernel) in folders.items():
        psnr = {n: [] for n in steps}
        for lr, gt in zip(inputs, gts):
            result = tester.adapt_at_steps(lr, kernel, steps, output_shape=gt.shape[:2])
            for n in steps:
                psnr[n].append(metrics.psnr_y(result.srs[n], gt, int(config.scale)))
        scores[name] = {f"mzsr_{n}": float(np.mean(values)) for n, values in psnr.items()}
    return scores


def learning_curve(run_dir: str, folders: Mapping[str, Folder], config: AdaptationConfig,
                   steps: Sequence[int] = (1, 10), every: int = 1, limit: int = 0, out_json: str = None,
                   log: Callable[[str], None] = print) -> List[Dict]:
    """Score every ``every``-th checkpoint of ``run_dir`` (and always the last); rows ``{step, checkpoint,
    scores}``. With ``out_json``, rows already there are reused (also those of checkpoints deleted since)
    and the file is updated after each row."""
    loaded = {name: load_folder(folder, config.scale, limit) for name, folder in folders.items()}
    done = {}
    if out_json and os.path.exists(out_json):
        with open(out_json) as f:
            done = {row["checkpoint"]: row for row in json.load(f)["rows"]}
    checkpoints = run_checkpoints(run_dir)
    chosen = checkpoints[::every] + ([checkpoints[-1]] if (len(checkpoints) - 1) % every else [])
    # rows of checkpoints the run has since deleted (it keeps a bounded number) stay in the curve
    present = {prefix for _, prefix in checkpoints}
    rows = sorted((row for prefix, row in done.items() if prefix not in present), key=lambda row: row["step"])
    for step, prefix in chosen:
        row = done.get(prefix) or {"step": step, "checkpoint": prefix,
                                   "scores": score_checkpoint(prefix, loaded, config, steps)}
        rows.append(row)
        log(f"step {step}: " + "; ".join(f"{name} " + ", ".join(f"{k} {v:.3f}" for k, v in s.items())
                                          for name, s in row["scores"].items()))
        if out_json:
            os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
            with open(out_json, "w") as f:
                json.dump({"run": run_dir, "steps": list(steps), "rows": rows}, f, indent=1)
    return rows


def best_row(rows: Sequence[Mapping], folder: str, key: str) -> Mapping:
    """The row whose ``scores[folder][key]`` is highest (the checkpoint to select)."""
    return max(rows, key=lambda row: row["scores"][folder][key])


def chain(phases: Sequence[Tuple[Sequence[Mapping], Optional[int]]]) -> List[Dict]:
    """One curve for a model trained in phases, each phase a run started from a checkpoint of the one before.

    ``phases``: ``(rows, until)`` in training order, ``until`` being the step of the checkpoint the next
    phase started from (``None`` for the last). A phase's rows after ``until`` are dropped and its steps
    shifted by the ``until`` of the phases before it; each returned row gets ``phase`` (0-based) and
    ``phase_step`` (the step within its own run).
    """
    joined, offset = [], 0
    for index, (rows, until) in enumerate(phases):
        if until is None and index < len(phases) - 1:
            raise ValueError(f"phase {index} needs the step the next phase started from")
        for row in rows:
            if until is None or row["step"] <= until:
                joined.append(dict(row, step=row["step"] + offset, phase=index, phase_step=row["step"]))
        offset += until or 0
    return sorted(joined, key=lambda row: row["step"])
