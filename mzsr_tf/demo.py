"""The demo images of ``dataset/demo/``: where they are, and how they are made from scikit-image's public-domain
sample photographs (``scripts/make_demo.py``).

Importing this module imports no TensorFlow (the command-line parsers take their defaults from it); the
builders import what they need when called.  scikit-image is needed only to build.
"""
from __future__ import annotations

import logging
import os

DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dataset", "demo")
"""The demo folder of the repository: ``Input/``, ``GT/`` and ``kernel.mat``."""
DEMO_KERNEL = os.path.join(DEMO_DIR, "kernel.mat")
DEMO_CROPS = {
    "chelsea": ("chelsea", 20, 90, 240, 320),
    "coffee": ("coffee", 40, 140, 240, 320),
    "astronaut": ("astronaut", 0, 128, 256, 256),
}
"""Demo image name -> (``skimage.data`` function, top, left, height, width) of its GT crop."""
REAL_PHOTOS = ("rocket", "coffee", "chelsea")
"""``skimage.data`` photographs used whole as real low-resolution inputs (public domain / CC0)."""

log = logging.getLogger(__name__)


class MissingScikitImage(ImportError):
    """scikit-image, which holds the sample photographs, is not installed."""


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        raise MissingScikitImage("scripts/make_demo.py needs scikit-image (pip install scikit-image)") from None
    return skimage.data


def write_demo(out: str = DEMO_DIR) -> None:
    """Write ``out/kernel.mat`` (the isotropic Gaussian of covariance 2.0, 21x21), the GT crops of
    ``DEMO_CROPS`` in ``out/GT/`` and their LR inputs in ``out/Input/`` (that kernel, direct x2 subsampling:
    the paper's g^d_2.0)."""
    data = _skimage_data()
    from mzsr_tf import atomic, degradation, kernels, metrics
    kernel = kernels.isotropic_gaussian(21, 2.0)
    for sub in ("Input", "GT"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    kernels.save_kernel(os.path.join(out, "kernel.mat"), kernel)
    for name, (function, top, left, height, width) in DEMO_CROPS.items():
        gt = getattr(data, function)()[top:top + height, left:left + width, :3]
        lr = degradation.degrade(gt.astype(float) / 255.0, kernel, 2.0, ds_method="direct")
        for sub, image in (("GT", gt), ("Input", metrics.to_uint8(lr))):
            atomic.write_png(os.path.join(out, sub, f"{name}.png"), image)
        log.info("%s: GT %dx%d, LR %dx%d", name, gt.shape[0], gt.shape[1], lr.shape[0], lr.shape[1])


def write_real_photos(folder: str) -> None:
    """Write the photographs of ``REAL_PHOTOS`` whole, at their native resolution (no GT, no kernel), as
    ``folder/<name>.png``: real low-resolution inputs for ``--estimate-kernel``."""
    data = _skimage_data()
    from mzsr_tf import atomic
    for name in REAL_PHOTOS:
        photo = getattr(data, name)()[..., :3]
        atomic.write_png(os.path.join(folder, f"{name}.png"), photo)
        log.info("%s: %dx%d -> %s", name, photo.shape[0], photo.shape[1], folder)
