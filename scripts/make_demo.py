#!/usr/bin/env python
"""Regenerate dataset/demo/: LR inputs, GT and kernel.mat from public-domain sample photographs.

The photographs are the CC0 / public-domain samples that scikit-image ships in its wheel
(``skimage.data``: chelsea, coffee, astronaut; see dataset/demo/README.md). scikit-image is needed
only to regenerate the demo, not to use mzsr-tf:

    pip install scikit-image && python scripts/make_demo.py [--out dataset/demo]

Each GT is a crop of a photograph; its LR input is made by mzsr_tf.degradation with the isotropic
Gaussian of covariance 2.0 (21x21) and direct x2 subsampling (the paper's g^d_2.0).
"""
import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# name: (skimage.data function, top, left, height, width) of the GT crop
CROPS = {
    "chelsea": ("chelsea", 20, 90, 240, 320),
    "coffee": ("coffee", 40, 140, 240, 320),
    "astronaut": ("astronaut", 0, 128, 256, 256),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "dataset", "demo"))
    args = parser.parse_args(argv)
    try:
        import skimage.data
    except ImportError:
        print("error: scripts/make_demo.py needs scikit-image (pip install scikit-image)", file=sys.stderr)
        return 2
    import imageio.v3 as iio

    from mzsr_tf import degradation, kernels, metrics

    kernel = kernels.isotropic_gaussian(21, 2.0)
    os.makedirs(os.path.join(args.out, "Input"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "GT"), exist_ok=True)
    kernels.save_kernel(os.path.join(args.out, "kernel.mat"), kernel)
    for name, (function, top, left, height, width) in CROPS.items():
        photo = getattr(skimage.data, function)()
        gt = photo[top:top + height, left:left + width, :3]
        lr = degradation.degrade(gt.astype(float) / 255.0, kernel, 2.0, ds_method="direct")
        iio.imwrite(os.path.join(args.out, "GT", f"{name}.png"), gt)
        iio.imwrite(os.path.join(args.out, "Input", f"{name}.png"), metrics.to_uint8(lr))
        print(f"{name}: GT {gt.shape[0]}x{gt.shape[1]}, LR {lr.shape[0]}x{lr.shape[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
