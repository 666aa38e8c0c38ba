"""The paper's benchmark degradations by name, and the test sets made from them.

The MZSR paper (Soh, Cho and Cho, CVPR 2020, arXiv 2002.12213, Sec. 4 "Experiments") evaluates on
four ×2 degradations and one ×4 degradation of Set5, BSD100 and Urban100.  Each is a Gaussian blur
kernel with covariance ``R(theta) diag(l1, l2) R(theta)^T`` (the paper's Eq. 8: ``l1``, ``l2`` are
covariance eigenvalues, the "widths"; see ``mzsr_tf.kernels``) followed by subsampling:

=========  =============  =====  =========  ========================================  ============
on disk    paper          scale  subsample  kernel (21 x 21)                          preset
=========  =============  =====  =========  ========================================  ============
``g02``    g^d_0.2        2      direct     isotropic, width 0.2 (severe aliasing)    direct_x2
``g20``    g^d_2.0        2      direct     isotropic, width 2.0                      direct_x2
``gani``   g^d_ani        2      direct     anisotropic, l1 = 4.0, l2 = 1.0,          direct_x2
                                            theta = -0.5 rad
``b13``    g^b_1.3        2      bicubic    isotropic, width 1.3                      bicubic_x2
``g20x4``  g^d_2.0 (×4)   4      direct     isotropic, width 2.0                      direct_x4
=========  =============  =====  =========  ========================================  ============

``bic`` is the paper's "bicubic" scenario (its Table 1): the LR is MATLAB's ``imresize(HR, 0.5)`` (bicubic
with antialiasing, no other blur), made in float64 by ``mzsr_tf.imresize`` and rounded to uint8; it has no
``kernel.mat`` and is meta-tested as bicubic degradation (``--kernelpath ''``, preset bicubic_x2).

``rk`` is not the paper's: a blind benchmark with its own random kernel per image (``RandomKernels``,
KernelGAN's DIV2KRK recipe), saved beside each input as ``<image>.mat``.

All kernels are 21 x 21 as the authors' released ``Input/g20/kernel.mat`` (which ``g20`` equals to
float64 rounding, and whose inputs it regenerates bit-exactly).  "preset" names the published model
(and test-time learning-rate schedule) meant for the degradation (``mzsr_tf.config.PRESETS``).
``PAPER_RESULTS`` holds the numbers the paper reports for each kernel and set (its Table 2 and
its ×4 table), which ``mzsr_tf.evaluate`` prints beside its own.

A test set on disk (``make_testset``)::

    NAME/testset.json                    what was made, from what, with which parameters
    NAME/Input/<kernel>/kernel.mat       the blur kernel (variable ``kernel``)
    NAME/Input/<kernel>/<set>/<img>.png  LR inputs, 8-bit RGB
    NAME/Input/rk/<set>/<img>.mat        per-image kernels (``rk`` only; no shared kernel.mat)
    NAME/GT/<set>/<img>.png              HR images modcropped by 2 (×2 kernels)
    NAME/GT_x4/<set>/<img>.png           HR images modcropped by 4 (×4 kernels)

Each LR image is ``to_uint8(degrade(modcrop(HR, scale) / 255, kernel, scale, subsampling))`` in
float64.  Grayscale HR images (Set14's ``bridge``) are expanded to three equal channels first, so
that every input and GT is RGB (the manifest lists them); alpha channels are dropped with a warning
and 16-bit images scaled to 8 bits (``mzsr_tf.data.images.to_rgb_uint8``).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import zlib
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mzsr_tf import atomic, degradation, kernels, metrics
from mzsr_tf.config import read_json_object
from mzsr_tf.data.images import IMAGE_EXTENSIONS, decode_image, image_files, is_grayscale, to_rgb_uint8

MANIFEST = "testset.json"
KERNEL_FILE = "kernel.mat"


class TestSetError(ValueError):
    """A bad test-set request or folder; the message names the path or kernel and the problem."""

    __test__ = False  # not a pytest test class


@dataclasses.dataclass(frozen=True)
class PaperKernel:
    """One of the paper's benchmark degradations.

    ``l1``, ``l2`` are the covariance eigenvalues and ``theta`` the rotation in radians
    (``mzsr_tf.kernels.anisotropic_gaussian``); ``ds_method`` the subsampling after the blur.
    """

    name: str
    paper_name: str
    scale: float
    ds_method: str
    l1: float
    l2: float
    theta: float
    ksize: int
    preset: str
    description: str

    def kernel(self) -> np.ndarray:
        """The blur kernel, float64 ``[ksize, ksize]`` summing to 1."""
        return kernels.anisotropic_gaussian(self.ksize, self.theta, self.l1, self.l2)

    @property
    def gt_folder(self) -> str:
        """The GT folder of this kernel's scale (``GT`` for ×2, ``GT_x4`` for ×4)."""
        return gt_folder(self.scale)


PAPER_KERNELS: Dict[str, PaperKernel] = {k.name: k for k in (
    PaperKernel("g02", "g^d_0.2", 2.0, "direct", 0.2, 0.2, 0.0, 21, "direct_x2",
                "isotropic Gaussian, width 0.2, direct subsampling (severe aliasing)"),
    PaperKernel("g20", "g^d_2.0", 2.0, "direct", 2.0, 2.0, 0.0, 21, "direct_x2",
                "isotropic Gaussian, width 2.0, direct subsampling"),
    PaperKernel("gani", "g^d_ani", 2.0, "direct", 4.0, 1.0, -0.5, 21, "direct_x2",
                "anisotropic Gaussian, widths 4.0 and 1.0, theta -0.5, direct subsampling"),
    PaperKernel("b13", "g^b_1.3", 2.0, "bicubic", 1.3, 1.3, 0.0, 21, "bicubic_x2",
                "isotropic Gaussian, width 1.3, bicubic subsampling"),
    PaperKernel("g20x4", "g^d_2.0 (x4)", 4.0, "direct", 2.0, 2.0, 0.0, 21, "direct_x4",
                "isotropic Gaussian, width 2.0, direct subsampling, x4"),
)}

# The paper's reported numbers for these kernels: its Table 2 (x2; its "Bicubic" is interpolation, its
# "ZSSR" Shocher et al.'s method) and its x4 table (the reference README's figure/resultx4.png).
PAPER_RESULTS: Dict[Tuple[str, str], Dict[str, Tuple[float, float]]] = {
    ("g02", "Set5"): {"bicubic": (30.24, 0.8976), "zssr": (34.29, 0.9373),
                      "mzsr_1": (33.14, 0.9277), "mzsr_10": (33.74, 0.9301)},
    ("g02", "BSD100"): {"bicubic": (27.45, 0.7992), "zssr": (29.35, 0.8465),
                        "mzsr_1": (28.74, 0.8389), "mzsr_10": (29.03, 0.8415)},
    ("g02", "Urban100"): {"bicubic": (24.70, 0.7958), "zssr": (28.13, 0.8788),
                          "mzsr_1": (26.24, 0.8394), "mzsr_10": (26.60, 0.8439)},
    ("g20", "Set5"): {"bicubic": (28.73, 0.8449), "zssr": (34.90, 0.9397),
                      "mzsr_1": (35.20, 0.9398), "mzsr_10": (36.05, 0.9439)},
    ("g20", "BSD100"): {"bicubic": (26.51, 0.7157), "zssr": (30.57, 0.8712),
                        "mzsr_1": (30.58, 0.8627), "mzsr_10": (31.09, 0.8739)},
    ("g20", "Urban100"): {"bicubic": (23.70, 0.7109), "zssr": (27.86, 0.8582),
                          "mzsr_1": (28.23, 0.8657), "mzsr_10": (29.19, 0.8838)},
    ("gani", "Set5"): {"bicubic": (28.15, 0.8265), "zssr": (33.96, 0.9307),
                       "mzsr_1": (34.05, 0.9271), "mzsr_10": (34.78, 0.9323)},
    ("gani", "BSD100"): {"bicubic": (26.00, 0.6891), "zssr": (29.72, 0.8479),
                         "mzsr_1": (28.82, 0.8013), "mzsr_10": (29.54, 0.8297)},
    ("gani", "Urban100"): {"bicubic": (23.13, 0.6796), "zssr": (27.03, 0.8335),
                           "mzsr_1": (26.51, 0.8126), "mzsr_10": (27.34, 0.8369)},
    ("b13", "Set5"): {"bicubic": (30.54, 0.8773), "zssr": (35.24, 0.9434),
                      "mzsr_1": (35.18, 0.9430), "mzsr_10": (36.64, 0.9498)},
    ("b13", "BSD100"): {"bicubic": (27.49, 0.7546), "zssr": (30.74, 0.8743),
                        "mzsr_1": (29.02, 0.8544), "mzsr_10": (31.25, 0.8818)},
    ("b13", "Urban100"): {"bicubic": (24.74, 0.7527), "zssr": (28.30, 0.8693),
                          "mzsr_1": (28.27, 0.8771), "mzsr_10": (29.83, 0.8965)},
    ("g20x4", "Set5"): {"bicubic": (24.74, 0.7321), "zssr": (27.39, 0.7685),
                        "mzsr_1": (30.20, 0.8655), "mzsr_10": (30.50, 0.8704)},
    ("g20x4", "BSD100"): {"bicubic": (24.01, 0.5998), "zssr": (25.89, 0.6776),
                          "mzsr_1": (26.73, 0.7138), "mzsr_10": (26.89, 0.7168)},
    ("g20x4", "Urban100"): {"bicubic": (21.16, 0.5811), "zssr": (23.53, 0.6822),
                            "mzsr_1": (24.36, 0.7333), "mzsr_10": (24.65, 0.7394)},
    # the "bicubic" scenario, the paper's Table 1 (its supervised CARN and RCAN rows are left out)
    ("bic", "Set5"): {"bicubic": (33.64, 0.9293), "zssr": (36.93, 0.9554),
                      "mzsr_1": (36.77, 0.9549), "mzsr_10": (37.25, 0.9567)},
    ("bic", "BSD100"): {"bicubic": (29.55, 0.8427), "zssr": (31.43, 0.8901),
                        "mzsr_1": (31.33, 0.8910), "mzsr_10": (31.64, 0.8928)},
    ("bic", "Urban100"): {"bicubic": (26.87, 0.8398), "zssr": (29.34, 0.8941),
                          "mzsr_1": (30.01, 0.9054), "mzsr_10": (30.41, 0.9092)},
}
"""The paper's (PSNR dB, SSIM) on the Y channel by ``(kernel name, set name)`` and column key
(``bicubic``, ``zssr``, ``mzsr_1``, ``mzsr_10``: ``mzsr_tf.evaluate.column_key``'s keys)."""

PAPER_MULTISCALE_RESULTS: Dict[Tuple[str, str], Dict[str, Tuple[float, Optional[float]]]] = {
    ("g02", "Set5"): {"mzsr_10": (33.33, None)},
    ("g20", "Set5"): {"mzsr_10": (35.67, None)},
    ("gani", "Set5"): {"mzsr_10": (33.95, None)},
}
"""The paper's multi-scale model (its "Average PSNR results of multi-scale model on Set5"): PSNR after 10
steps at ×2 only, no SSIM (``None``); its ×4 results are shown as images only."""


def paper_results(preset: str, paper_kernel, set_name: str) -> Dict[str, Tuple[float, Optional[float]]]:
    """The paper's numbers for ``paper_kernel`` (a ``PaperKernel`` or ``BicubicScenario``) on ``set_name``
    when meta-tested with ``preset``: its own model's (``PAPER_RESULTS``) under the kernel's own preset,
    the multi-scale model's (``PAPER_MULTISCALE_RESULTS``) under ``multiscale``; ``{}`` otherwise and where
    the paper has none."""
    if preset == paper_kernel.preset:
        return PAPER_RESULTS.get((paper_kernel.name, set_name), {})
    if preset == "multiscale":
        return PAPER_MULTISCALE_RESULTS.get((paper_kernel.name, set_name), {})
    return {}


@dataclasses.dataclass(frozen=True)
class Degradation:
    """What every degradation without one fixed Gaussian kernel has: its folder name, the paper's name,
    scale, subsampling after the blur, the preset meant for it and a one-line description."""

    name: str
    paper_name: str
    scale: float
    ds_method: str
    preset: str
    description: str

    @property
    def gt_folder(self) -> str:
        """The GT folder of this degradation's scale."""
        return gt_folder(self.scale)


@dataclasses.dataclass(frozen=True)
class BicubicScenario(Degradation):
    """The paper's "bicubic" degradation: bicubic down-sampling with antialiasing and nothing else.

    Its ``kernel()`` is ``'cubic'`` (``degradation.degrade``'s name for it): no kernel file is written
    and the meta-test makes the son by bicubic down-sampling too.
    """

    def kernel(self) -> str:
        return degradation.CUBIC


BICUBIC_SCENARIOS: Dict[str, BicubicScenario] = {k.name: k for k in (
    BicubicScenario("bic", "bicubic", 2.0, "bicubic", "bicubic_x2",
                    "MATLAB imresize(HR, 0.5): bicubic with antialiasing, no kernel"),
)}
"""Degradations without a blur kernel, by folder name."""


@dataclasses.dataclass(frozen=True)
class RandomKernels(Degradation):
    """A degradation with its own random blur kernel per image (a blind benchmark, not the paper's).

    The recipe of KernelGAN's DIV2KRK (Bell-Kligler, Shocher and Irani, NeurIPS 2019, Sec. 5; their
    BlindSR_dataset_generator): covariance eigenvalues ``l1, l2 ~ U(min_var, max_var)`` drawn
    independently (``0.175 * scale`` and ``2.5 * scale``), angle ``theta ~ U[0, pi)``, the Gaussian
    sampled on ``support x support`` pixels (11 at x2), times ``1 + U(-noise_level, noise_level)``
    per pixel (multiplicative noise), normalised to sum 1, then zero-padded to ``ksize x ksize``
    centred (the size MZSR's kernels have).  Unlike DIV2KRK the kernel is centred by this project's
    convention (``mzsr_tf.kernels``), so the LR is not shifted against its GT.  Each image's draw is
    seeded by ``(seed, crc32("<set>/<image stem>"))``: reproducible and independent of which other
    images or sets are made.
    """

    min_var: float
    max_var: float
    noise_level: float
    support: int
    ksize: int
    seed: int

    def draw(self, set_name: str, image_stem: str) -> Tuple[np.ndarray, Dict[str, float]]:
        """The kernel of one image, float64 ``[ksize, ksize]`` summing to 1, and its parameters."""
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{set_name}/{image_stem}".encode())])
        l1, l2 = rng.uniform(self.min_var, self.max_var, size=2)
        theta = rng.uniform(0.0, np.pi)
        gaussian = kernels.anisotropic_gaussian(self.support, theta, l1, l2)
        noisy = gaussian * (1.0 + rng.uniform(-self.noise_level, self.noise_level, size=gaussian.shape))
        pad = (self.ksize - self.support) // 2
        kernel = np.pad(noisy / noisy.sum(), pad)
        return kernel, {"l1": float(l1), "l2": float(l2), "theta": float(theta)}


RANDOM_KERNEL_SETS: Dict[str, RandomKernels] = {k.name: k for k in (
    RandomKernels("rk", "random kernels (DIV2KRK recipe)", 2.0, "direct", "direct_x2",
                  "one random anisotropic Gaussian per image (variances U(0.35, 5), 11x11 support, 25% "
                  "multiplicative noise), direct subsampling",
                  min_var=0.35, max_var=5.0, noise_level=0.25, support=11, ksize=21, seed=0),
)}
"""Degradations with a kernel per image, by folder name (``make_testset`` saves each beside its input)."""

DEGRADATION_ORDER = list(PAPER_KERNELS) + list(BICUBIC_SCENARIOS) + list(RANDOM_KERNEL_SETS)
"""Every degradation name, in table order."""


def gt_folder(scale: float) -> str:
    """``GT`` for ×2, ``GT_x<scale>`` otherwise."""
    return "GT" if scale == 2 else f"GT_x{scale:g}"


def get_kernel(name: str):
    """A degradation by its folder name: a ``PaperKernel`` or a ``RandomKernels``; an unknown name is a
    ``TestSetError`` listing the known ones."""
    if name in PAPER_KERNELS:
        return PAPER_KERNELS[name]
    if name in BICUBIC_SCENARIOS:
        return BICUBIC_SCENARIOS[name]
    if name in RANDOM_KERNEL_SETS:
        return RANDOM_KERNEL_SETS[name]
    known = list(PAPER_KERNELS.values()) + list(BICUBIC_SCENARIOS.values()) + list(RANDOM_KERNEL_SETS.values())
    raise TestSetError(f"unknown kernel {name!r}; known kernels: "
                       + ", ".join(f"{k.name} ({k.paper_name})" for k in known))


def find_hr_sets(hr_dir: str, names: Optional[Sequence[str]] = None) -> Dict[str, List[str]]:
    """The HR image sets under ``hr_dir``: ``{set name: sorted image paths}``.

    ``hr_dir`` is either a folder of images (one set, named after the folder) or a folder of such
    folders (e.g. ``benchmark/`` holding ``Set5/``, ``Set14/``, ``BSD100/``).  ``names`` selects sets;
    a requested set that is not there is an error listing those that are.
    """
    if not os.path.isdir(hr_dir):
        raise TestSetError(f"HR folder {hr_dir} does not exist")
    direct = image_files(hr_dir)
    if direct:
        found = {os.path.basename(os.path.normpath(hr_dir)): direct}
    else:
        found = {}
        for entry in sorted(os.listdir(hr_dir)):
            folder = os.path.join(hr_dir, entry)
            if os.path.isdir(folder) and image_files(folder):
                found[entry] = image_files(folder)
    if not found:
        raise TestSetError(f"HR folder {hr_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}) "
                           "and no folders of images")
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise TestSetError(f"set(s) {', '.join(missing)} not found in {hr_dir}; available: "
                               + ", ".join(found))
        found = {n: found[n] for n in names}
    return found


def read_hr(path: str):
    """An HR image as uint8 RGB ``[H, W, 3]`` and whether it was grayscale (expanded to RGB).

    Alpha is dropped and 16-bit scaled to 8 bits (``mzsr_tf.data.images.to_rgb_uint8``); a file that
    cannot be used is a ``TestSetError`` naming it.
    """
    image = decode_image(path, what="HR image", error=TestSetError)
    return to_rgb_uint8(image, path, error=TestSetError), is_grayscale(image)


def check_hr_size(path: str, shape, paper_kernel) -> None:
    """An HR image must be at least ``scale`` pixels a side for ``paper_kernel`` (its LR at least 1x1);
    a smaller one is a ``TestSetError`` naming it."""
    side = int(np.ceil(paper_kernel.scale))
    if min(shape[:2]) < side:
        raise TestSetError(f"HR image {path} ({shape[0]}x{shape[1]}) is too small for kernel {paper_kernel.name} "
                           f"(x{paper_kernel.scale:g}): it needs at least {side} pixels a side")


def make_lr(hr: np.ndarray, paper_kernel, kernel: Optional[np.ndarray] = None):
    """``(modcropped HR, LR)``, both uint8 ``[H, W, 3]``, for one uint8 HR image and one degradation.

    ``kernel`` defaults to ``paper_kernel.kernel()`` (a ``RandomKernels`` degradation must pass its
    image's kernel).  The LR is computed in float64 (``degrade``).
    """
    gt = metrics.modcrop(hr, paper_kernel.scale)
    blur = paper_kernel.kernel() if kernel is None else kernel
    lr = degradation.degrade(gt / 255.0, blur, paper_kernel.scale, ds_method=paper_kernel.ds_method)
    return gt, metrics.to_uint8(lr)


def make_testset(hr_dir: str, out_dir: str, kernel_names: Sequence[str] = tuple(DEGRADATION_ORDER),
                 set_names: Optional[Sequence[str]] = None,
                 log: Callable[[str], None] = print) -> Dict:
    """Write the LR inputs, kernels and modcropped GT of every set × kernel; returns the manifest.

    See the module docstring for the layout.  Every kernel name and HR image (readable, large enough
    for the largest scale: ``check_hr_size``) is checked before anything is written.  Existing files of the same names are overwritten.
    """
    paper_kernels = [get_kernel(name) for name in kernel_names]
    if not paper_kernels:
        raise TestSetError("no kernels requested")
    hr_sets = find_hr_sets(hr_dir, set_names)
    images = {name: [read_hr(path) for path in paths] for name, paths in hr_sets.items()}
    largest = max(paper_kernels, key=lambda k: k.scale)
    for name, paths in hr_sets.items():
        for path, (hr, _) in zip(paths, images[name]):
            check_hr_size(path, hr.shape, largest)

    manifest = {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "hr_dir": os.path.abspath(hr_dir),
        "recipe": "LR = to_uint8(degrade(modcrop(HR, scale) / 255, kernel, scale, ds_method)) in float64 "
                  "(mzsr_tf.testsets.make_lr); grayscale HR expanded to 3 channels",
        "kernels": {k.name: {**dataclasses.asdict(k), "gt": k.gt_folder} for k in paper_kernels},
        "sets": {name: {"images": [os.path.splitext(os.path.basename(p))[0] + ".png" for p in paths],
                        "expanded_from_grayscale": [os.path.basename(p) for p, (_, gray)
                                                    in zip(paths, images[name]) if gray]}
                 for name, paths in hr_sets.items()},
    }
    total = sum(len(v) for v in images.values()) * len(paper_kernels)
    done = 0
    for paper_kernel in paper_kernels:
        per_image = isinstance(paper_kernel, RandomKernels)
        kernel_dir = os.path.join(out_dir, "Input", paper_kernel.name)
        os.makedirs(kernel_dir, exist_ok=True)
        if not per_image:
            kernel = paper_kernel.kernel()
        if isinstance(paper_kernel, PaperKernel):
            kernels.save_kernel(os.path.join(kernel_dir, KERNEL_FILE), kernel)
        for set_name, paths in hr_sets.items():
            lr_dir = os.path.join(kernel_dir, set_name)
            gt_dir = os.path.join(out_dir, paper_kernel.gt_folder, set_name)
            os.makedirs(lr_dir, exist_ok=True)
            os.makedirs(gt_dir, exist_ok=True)
            for path, (hr, _) in zip(paths, images[set_name]):
                stem = os.path.splitext(os.path.basename(path))[0]
                file_name = stem + ".png"
                if per_image:
                    kernel, parameters = paper_kernel.draw(set_name, stem)
                    kernels.save_kernel(os.path.join(lr_dir, stem + ".mat"), kernel)
                    manifest["kernels"][paper_kernel.name].setdefault("images", {})[f"{set_name}/{stem}"] = parameters
                gt, lr = make_lr(hr, paper_kernel, kernel)
                atomic.write_png(os.path.join(lr_dir, file_name), lr)
                atomic.write_png(os.path.join(gt_dir, file_name), gt)
            done += len(paths)
            log(f"[{done}/{total}] {paper_kernel.name} ({paper_kernel.paper_name}) {set_name}: "
                f"{len(paths)} images -> {lr_dir}")
    previous = read_manifest(out_dir)
    if previous:  # adding kernels or sets to an existing test set keeps what it had
        manifest["kernels"] = {**previous.get("kernels", {}), **manifest["kernels"]}
        manifest["sets"] = {**previous.get("sets", {}), **manifest["sets"]}
    atomic.write_json(os.path.join(out_dir, MANIFEST), manifest)
    return manifest


def read_manifest(testset_dir: str) -> Optional[Mapping]:
    """The ``testset.json`` of a test set, or None (e.g. the authors' downloaded folders have none)."""
    return read_json_object(os.path.join(testset_dir, MANIFEST), "the test-set manifest", TestSetError,
                            missing_ok=True)
