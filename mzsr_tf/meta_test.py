"""The meta-test over a folder, as the reference's ``main.py`` test mode runs it.

``run_folder`` pairs the LR inputs with their GT images by sorted order (as the reference does, but
checks the pairing), adapts the network afresh to each image (``mzsr_tf.adaptation``), writes
``SAVE/NN/<name>.png`` (``NN`` = number of steps, two digits) and ``SAVE/NN/results.json``, and
prints per-image lines and the reference's closing line
``[*] Average PSNR ** Initial: x, Final : y``.

Every input is read and checked before the first adaptation, so a bad file stops the run with a
one-line ``MetaTestError`` naming it, before anything is written.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, List, Optional, Tuple, Type

import imageio.v3 as iio
import numpy as np

from mzsr_tf import metrics
from mzsr_tf.adaptation import MetaTester
from mzsr_tf.imresize import imresize

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


class MetaTestError(ValueError):
    """A bad input to the meta-test; the message names the file and the problem."""


def list_images(folder: str, what: str) -> List[str]:
    """Sorted image paths in ``folder``; ``what`` names the folder's role in error messages."""
    if not os.path.isdir(folder):
        raise MetaTestError(f"{what} folder {folder} does not exist")
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise MetaTestError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return paths


def read_rgb(path: str) -> np.ndarray:
    """An 8-bit RGB image as float32 HWC in [0, 1]; grayscale, alpha and 16-bit are errors."""
    try:
        image = iio.imread(path)
    except Exception as error:  # imageio raises many types for unreadable files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MetaTestError(f"cannot read image {path}: {reason}") from None
    if image.dtype != np.uint8:
        raise MetaTestError(f"{path}: {image.dtype} image; the meta-test takes 8-bit RGB images "
                            "(convert 16-bit images to 8-bit first)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise MetaTestError(f"{path}: grayscale image; the meta-test takes RGB images "
                            "(stack the channel three times to use it)")
    if image.ndim != 3 or image.shape[2] != 3:
        channels = image.shape[2] if image.ndim == 3 else "?"
        raise MetaTestError(f"{path}: image with {channels} channels (shape {image.shape}); the "
                            "meta-test takes RGB images (drop the alpha channel first)")
    return image.astype(np.float32) / 255.0


def expected_sr_shape(lr_shape, scale: float):
    """``ceil(scale * (H, W))``: the SR shape when no GT is given (the reference's rule)."""
    return tuple(int(np.ceil(n * scale)) for n in lr_shape[:2])


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
    inputs, gts = list_images(input_dir, "input"), list_images(gt_dir, "GT")
    if len(inputs) != len(gts):
        raise error(f"{len(inputs)} images in input folder {input_dir} but {len(gts)} in GT folder "
                    f"{gt_dir}; they are paired by sorted order")
    return list(zip(inputs, gts))


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


def run_folder(tester: MetaTester, input_dir: str, save_dir: str, kernel: Optional[np.ndarray],
               gt_dir: Optional[str] = None, kernel_path: Optional[str] = None,
               log: Callable[[str], None] = print, extra_info: Optional[Dict] = None) -> Dict:
    """Meta-test every image of ``input_dir``; returns the ``results.json`` content.

    ``kernel`` is the 2-D blur kernel of the inputs, or None for bicubic degradation;
    ``kernel_path`` is only used in messages. Without ``gt_dir`` no PSNR is computed.
    """
    cfg = tester.config
    if gt_dir:
        pairs = paired_paths(input_dir, gt_dir)
        input_paths, gt_paths = [p for p, _ in pairs], [g for _, g in pairs]
        images, gts = map(list, zip(*(read_pair(p, g, cfg.scale) for p, g in pairs)))
    else:
        input_paths, gt_paths = list_images(input_dir, "input"), None
        images = [read_rgb(p) for p in input_paths]
        gts = [None] * len(images)
    if kernel is not None:
        for path, lr in zip(input_paths, images):
            check_kernel_fits(kernel, kernel_path or "", path, lr.shape)

    out_dir = os.path.join(save_dir, "%02d" % cfg.num_steps)
    os.makedirs(out_dir, exist_ok=True)
    shave = int(cfg.scale)
    records = []
    start = time.perf_counter()
    for index, (path, lr, gt) in enumerate(zip(input_paths, images, gts)):
        name = os.path.splitext(os.path.basename(path))[0]
        out_shape = gt.shape[:2] if gt is not None else expected_sr_shape(lr.shape, cfg.scale)
        result = tester.adapt(lr, kernel, output_shape=out_shape, seed=(index, 0))
        sr_uint8 = metrics.to_uint8(result.sr)
        iio.imwrite(os.path.join(out_dir, name + ".png"), sr_uint8)
        record = {"name": name, "input": path, "seconds": result.seconds,
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
        log(line)
        records.append(record)

    summary = {"num_steps": cfg.num_steps, "scale": cfg.scale, "ds_method": cfg.ds_method,
               "inner_lr": list(cfg.inner_lr.rates(cfg.num_steps)),
               "kernel": kernel_path if kernel is not None else "cubic",
               "seconds_total": time.perf_counter() - start, "images": records}
    summary.update(extra_info or {})
    if gt_paths is not None:
        summary["average_initial_psnr"] = float(np.mean([r["initial_psnr"] for r in records]))
        summary["average_final_psnr"] = float(np.mean([r["final_psnr"] for r in records]))
        summary["average_final_ssim"] = float(np.mean([r["final_ssim"] for r in records]))
    results_path = os.path.join(out_dir, "results.json")
    with open(results_path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(results_path + ".tmp", results_path)
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
