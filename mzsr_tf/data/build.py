"""Building patch records from folders of HR images (the library behind ``scripts/generate_tfrecord.py``).

Two recipes, as the reference's record generators (github ``JWSoh/MainSR``):

- ``mzsr`` (``generate_TFRecord_MZSR.py``): HR patches (default 64x64, stride 120) that pass the
  gradient filter, each in all 8 flips/rotations, shuffled; feature ``label``.
- ``pretrain`` (``generate_TFRecord.py``): HR crops to a multiple of the scale, 96x96 labels
  (``48 * scale``) with stride 120 and the gradient filter, paired with the LR patch cut from the
  bicubic ``1/scale`` image, no augmentation, shuffled; features ``label`` and ``image``.  The
  reference read its LR images from DIV2K's MATLAB-made ``X2`` folder; here the LR image is made by
  the reference's numpy bicubic ``imresize`` (antialiased cubic, rounded to uint8).

Memory: the kept, un-augmented patches of all images are held in memory (``N * p * p * 3`` bytes;
about 1.7 GB for DIV2K's 800 images at 64x64 in ``mzsr`` mode, eight times less than the
reference, which held every augmented copy); augmented copies are made while writing.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from mzsr_tf import atomic, metrics
import mzsr_tf.data.images as images_lib
import mzsr_tf.data.patches as patches_lib
import mzsr_tf.data.records as records_lib

MODES = ("mzsr", "pretrain")
_WRITE_BATCH = 2048

Progress = Optional[Callable[[str], None]]


@dataclasses.dataclass(frozen=True)
class PatchRecipe:
    """How patches are cut from HR images.

    ``patch_size`` is the HR patch side (default: 64 for ``mzsr``, ``48 * scale`` for ``pretrain``);
    ``scale`` is used by ``pretrain`` only; ``seed`` seeds the shuffle (``np.random.default_rng``).
    """

    mode: str = "mzsr"
    patch_size: Optional[int] = None
    stride: int = 120
    scale: int = 2
    seed: int = 0
    gradient_threshold: float = patches_lib.GRADIENT_LOG_THRESHOLD

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "pretrain" and (not isinstance(self.scale, int) or self.scale < 2):
            raise ValueError(f"pretrain mode needs an integer scale >= 2 (--scale), got {self.scale!r}")
        if self.patch_size is None:
            object.__setattr__(self, "patch_size", 64 if self.mode == "mzsr" else 48 * self.scale)
        if self.patch_size < 2 or self.stride < 1:
            raise ValueError(f"need patch size >= 2 (--patch) and stride >= 1 (--stride), got {self.patch_size}, "
                             f"{self.stride}")
        if self.mode == "pretrain":
            if self.scale < 2 or self.patch_size % self.scale:
                raise ValueError(f"pretrain mode needs an integer scale >= 2 dividing the patch size, "
                                 f"got scale {self.scale} and patch size {self.patch_size}")

    @property
    def augmentations(self) -> int:
        return patches_lib.NUM_AUGMENTATIONS if self.mode == "mzsr" else 1

    @property
    def shapes(self) -> Dict[str, List[int]]:
        """Feature name -> patch shape ``[H, W, 3]`` of the records this recipe writes."""
        p = self.patch_size
        shapes = {records_lib.LABEL_KEY: [p, p, 3]}
        if self.mode == "pretrain":
            shapes[records_lib.IMAGE_KEY] = [p // self.scale, p // self.scale, 3]
        return shapes


def output_path(path: Union[str, os.PathLike], fmt: Optional[str] = None) -> str:
    """The record file name for ``path``: the format's extension is appended unless present.

    The reference always appended ``.tfrecord`` (``--tfrecord train_SR_MZSR`` wrote
    ``train_SR_MZSR.tfrecord``); here ``train_SR_MZSR`` and ``train_SR_MZSR.tfrecord`` both give
    ``train_SR_MZSR.tfrecord``, and ``out.h5`` selects HDF5 when ``fmt`` is not given.
    """
    path = os.fspath(path)
    lower = path.lower()
    has_tfrecord = lower.endswith(records_lib.TFRECORD_EXTENSIONS)
    has_hdf5 = lower.endswith(records_lib.HDF5_EXTENSIONS)
    if fmt is None:
        fmt = "hdf5" if has_hdf5 else "tfrecord"
    records_lib.check_format(fmt)
    if (fmt == "tfrecord" and has_hdf5) or (fmt == "hdf5" and has_tfrecord):
        raise ValueError(f"{path}: the extension does not match the format {fmt!r}")
    if has_tfrecord or has_hdf5:
        return path
    return path + records_lib.extension_for(fmt)


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """``uint8 [H/s, W/s, 3]``: the reference's antialiased cubic ``imresize(hr, 1/scale)``, rounded.

    ``hr`` is ``uint8 [H, W, 3]`` with ``H`` and ``W`` multiples of ``scale``; computed in float64.
    """
    from mzsr_tf.imresize import imresize  # the numeric core; imported here to keep reading light

    lr = imresize(hr.astype(np.float64), scale=1.0 / scale)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def build_records(label_folders: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
                  output: Union[str, os.PathLike], recipe: PatchRecipe = PatchRecipe(),
                  fmt: Optional[str] = None, num_shards: int = 1, skip_small: bool = False,
                  progress: Progress = None) -> dict:
    """Cut patches from every image in ``label_folders`` and write them to ``output``.

    Returns the summary also written as the JSON sidecar ``output + '.json'``: the recipe, the
    files with their record counts, the number of images, kept patches and records, and seconds.
    Errors name the file: an empty or missing folder, an unreadable image, an image smaller than
    a patch (skipped with a note instead when ``skip_small``), or no patch passing the filter.
    The output's folder is checked writable before any image is read (``atomic.OutputPathError``);
    the records and the sidecar appear together or not at all (``records.write_records``).
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    output = output_path(output, fmt)
    fmt = records_lib.format_of(output)
    atomic.check_output_file(output, "record file")
    paths = images_lib.list_images(label_folders)

    labels: List[np.ndarray] = []
    lr_patches: List[np.ndarray] = []
    skipped: List[str] = []
    for n, path in enumerate(paths):
        image = images_lib.read_image(path)
        if skip_small and (image.shape[0] < recipe.patch_size or image.shape[1] < recipe.patch_size):
            skipped.append(path)
            say(f"[*] Image {n + 1}/{len(paths)}: {path} is smaller than a patch, skipped")
            continue
        if recipe.mode == "mzsr":
            kept = patches_lib.extract_patches(image, recipe.patch_size, recipe.stride,
                                               recipe.gradient_threshold, name=path)
        else:
            hr = metrics.modcrop(image, recipe.scale)
            patches_lib.check_patch_fits(hr.shape, recipe.patch_size, path)
            kept, lr = patches_lib.extract_pairs(hr, bicubic_lr(hr, recipe.scale), recipe.patch_size,
                                                 recipe.scale, recipe.stride,
                                                 recipe.gradient_threshold, name=path)
            lr_patches.append(lr)
        labels.append(kept)
        say(f"[*] Image {n + 1}/{len(paths)}: {os.path.basename(path)} "
            f"{image.shape[0]}x{image.shape[1]}, {len(kept)} patches kept")

    counts = [len(k) for k in labels]
    if sum(counts) == 0:
        raise ValueError(f"no patch of the {len(paths)} images in {label_folders} passed the "
                         f"gradient filter (or every image was skipped)")
    label_array = np.concatenate(labels)
    del labels
    lr_array = np.concatenate(lr_patches) if lr_patches else None
    del lr_patches

    rng = np.random.default_rng(recipe.seed)
    patch_index, modes = patches_lib.shuffled_order(counts, rng, recipe.augmentations)
    total = len(patch_index)
    say(f"{total} patches ({sum(counts)} kept x {recipe.augmentations} augmentations), writing {output}")

    def batches():
        for start in range(0, total, _WRITE_BATCH):
            index = patch_index[start:start + _WRITE_BATCH]
            batch = {records_lib.LABEL_KEY: patches_lib.gather_augmented(
                label_array, index, modes[start:start + _WRITE_BATCH])}
            if lr_array is not None:
                batch[records_lib.IMAGE_KEY] = lr_array[index]
            done = min(start + _WRITE_BATCH, total)
            if done == total or (start // _WRITE_BATCH) % 10 == 0:
                say(f"[{done}/{total}] written")
            yield batch

    summary = {
        "recipe": dataclasses.asdict(recipe),
        "format": fmt,
        "shapes": recipe.shapes,
        "label_folders": [os.fspath(f) for f in ([label_folders] if isinstance(
            label_folders, (str, os.PathLike)) else label_folders)],
        "num_images": len(paths) - len(skipped),
        "skipped_images": skipped,
        "num_kept_patches": int(sum(counts)),
        "augmentations": recipe.augmentations,
        "num_records": int(total),
        "shuffle": "numpy.random.default_rng(seed).permutation",
    }
    def sidecar(shards: List[records_lib.ShardInfo]) -> dict:
        summary["files"] = [{"file": os.path.basename(s.file), "count": s.count} for s in shards]
        summary["seconds"] = round(time.perf_counter() - started, 3)
        return summary

    records_lib.write_records(output, batches(), total, fmt, num_shards,
                              attrs={"recipe": summary["recipe"], "shapes": recipe.shapes}, sidecar=sidecar)
    return summary
