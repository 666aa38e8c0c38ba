"""Learning curves: the meta-test of every checkpoint of a training run on fixed image folders.

Used to watch meta-training and to choose the checkpoint to ship: for each checkpoint, each folder
(LR inputs, GT, kernel) is meta-tested once for ``max(steps)`` steps and scored after each of
``steps`` (``MetaTester.adapt_at_steps``), so MZSR (1) and MZSR (10) cost one 10-step run.
Select on a validation folder that is not the one you report (e.g. some of BSD100, not Set5).
``chain`` joins the curves of a model trained in phases (a run started from a checkpoint of another).

A curve JSON caches its rows for one run and one way of scoring (``curve_key``: the run, the folders
with their paths, the step counts, ``limit``, the adaptation settings): re-running with other folders
or steps scores again, and a curve JSON of another run is refused rather than mixed or overwritten.
"""
from __future__ import annotations

import glob
import json
import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mzsr_tf import atomic, metrics
from mzsr_tf.checkpoints import load_weights
from mzsr_tf.config import AdaptationConfig, read_json_object, to_dict
from mzsr_tf.kernels import load_kernel
from mzsr_tf.meta_test import MetaTester, paired_paths, read_pair
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
    """``(inputs, modcropped GTs, kernel)`` of one folder, checked pairwise; ``limit`` > 0 keeps the first N.
    An empty kernel path means bicubic degradation (kernel None), as ``--kernelpath ''``."""
    lr_dir, gt_dir, kernel_path = folder
    pairs = paired_paths(lr_dir, gt_dir)
    if limit:
        pairs = pairs[:limit]
    inputs, gts = map(list, zip(*(read_pair(lr_path, gt_path, scale) for lr_path, gt_path in pairs)))
    return inputs, gts, (load_kernel(kernel_path) if kernel_path else None)


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


def curve_key(run_dir: str, folders: Mapping[str, Folder], config: AdaptationConfig,
               steps: Sequence[int], limit: int = 0) -> Dict:
    """What a curve's scores depend on besides the checkpoint: the run (its real path), each folder
    (name and absolute LR, GT and kernel paths), the step counts, ``limit`` and the adaptation settings.
    Stored in the curve JSON as ``"key"``; rows are reused only under an equal key."""
    settings = {name: value for name, value in to_dict(config).items() if name != "num_steps"}  # unused here
    key = {"run": os.path.realpath(run_dir),
           "folders": {name: [os.path.abspath(path) for path in folder] for name, folder in folders.items()},
           "steps": sorted(int(n) for n in steps), "limit": int(limit), "adaptation": settings}
    return json.loads(json.dumps(key))  # as read back from the file


def read_curve(out_json: str) -> Optional[Mapping]:
    """The curve JSON at ``out_json`` (``None`` if there is none); ``ValueError`` naming it if unusable."""
    saved = read_json_object(out_json, "a learning curve", ValueError, missing_ok=True)
    if saved is not None and not isinstance(saved.get("rows"), list):
        raise ValueError(f"{out_json}: not a learning-curve JSON (no list of rows)")
    return saved


def reusable_rows(saved: Optional[Mapping], key: Mapping, out_json: str,
                  log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """The rows of a saved curve that may be reused under ``key``, by checkpoint name (``ckpt-N``).

    Another run's curve is refused (``ValueError``: overwriting it would lose its rows); a curve of
    this run scored otherwise (other folders, paths, steps, limit or settings; or a file written
    before keys were stored) gives no rows: everything is scored again, and the ``log`` says why.
    """
    if saved is None:
        return {}
    saved_key = saved.get("key")
    saved_run = saved_key.get("run") if isinstance(saved_key, dict) else None
    if saved_run is None and saved.get("run") is not None:
        saved_run = os.path.realpath(saved["run"])
    if saved_run is not None and saved_run != key["run"]:
        raise ValueError(f"{out_json} holds the learning curve of run {saved_run}, not of {key['run']}; "
                         "give another --out (a curve JSON belongs to one run)")
    if saved_key != key:
        differs = sorted(name for name in key if not isinstance(saved_key, dict)
                         or saved_key.get(name) != key[name])
        log(f"{out_json}: its {len(saved['rows'])} row(s) were scored with other "
            f"{', '.join(differs)}; scoring again")
        return {}
    return {os.path.basename(row["checkpoint"]): row for row in saved["rows"]}


def learning_curve(run_dir: str, folders: Mapping[str, Folder], config: AdaptationConfig,
                   steps: Sequence[int] = (1, 10), every: int = 1, limit: int = 0, out_json: str = None,
                   log: Callable[[str], None] = print) -> List[Dict]:
    """Score every ``every``-th checkpoint of ``run_dir`` (and always the last); rows ``{step, checkpoint,
    scores}``.

    With ``out_json``, the file (``{"run", "key", "steps", "rows"}``) is rewritten atomically after
    each row; rows already in it are reused, also those of checkpoints deleted since, only when its
    ``key`` (``curve_key``: run, folders with their paths, steps, limit, settings) equals this call's:
    with other folders or steps every checkpoint is scored again, and a file of another run is refused
    (``reusable_rows``).  Its folder is checked writable before any scoring.
    """
    key = curve_key(run_dir, folders, config, steps, limit)
    done = {}
    if out_json:
        atomic.check_output_file(out_json, "curve JSON")
        done = reusable_rows(read_curve(out_json), key, out_json, log)
    checkpoints = run_checkpoints(run_dir)
    loaded = {name: load_folder(folder, config.scale, limit) for name, folder in folders.items()}
    chosen = checkpoints[::every] + ([checkpoints[-1]] if (len(checkpoints) - 1) % every else [])
    # rows of checkpoints the run has since deleted (it keeps a bounded number) stay in the curve
    present = {os.path.basename(prefix) for _, prefix in checkpoints}
    rows = sorted((row for name, row in done.items() if name not in present), key=lambda row: row["step"])
    for step, prefix in chosen:
        row = done.get(os.path.basename(prefix)) or {
            "step": step, "checkpoint": prefix, "scores": score_checkpoint(prefix, loaded, config, steps)}
        rows.append(row)
        log(f"step {step}: " + "; ".join(f"{name} " + ", ".join(f"{k} {v:.3f}" for k, v in s.items())
                                          for name, s in row["scores"].items()))
        if out_json:
            atomic.write_json(out_json, {"run": run_dir, "key": key, "steps": list(steps), "rows": rows},
                              indent=1)
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
