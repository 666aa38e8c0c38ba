"""Seconds per image of kernel estimation at the default settings: KernelGAN (``mzsr_tf.kernel_estimation``) and
the edges estimator (``mzsr_tf.edge_kernel``), in the same run.

Input: a BSD100-size low-resolution image (an HR image of ``../shared/datasets/benchmark/BSD100``,
degraded by an anisotropic Gaussian with direct x2 subsampling: 240x160 RGB), or a random textured
image of that size when the folder is absent.  Reports the first estimate (tracing included) and the
following ones with one reused ``KernelEstimator`` (as a folder run would), and the kernel error.

    python benchmarks/kernel_estimation_speed.py [--runs 3] [--iterations N]
"""
import argparse
import pathlib
import time

import numpy as np

from mzsr_tf import degradation, kernels
from mzsr_tf import kernel_estimation as ke

BSD100 = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "benchmark" / "BSD100"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="estimates to time (default 3)")
    parser.add_argument("--iterations", type=int, default=None, help="override KernelGANConfig.iterations")
    args = parser.parse_args()
    true = kernels.anisotropic_gaussian(21, 0.5, 4.0, 1.2)
    path = BSD100 / "img_001.png"
    if path.exists():
        from mzsr_tf.data.images import read_image
        hr = read_image(path).astype(np.float64) / 255.0
    else:
        print(f"{BSD100} absent: a random textured 320x480 image instead")
        hr = np.clip(np.cumsum(np.random.default_rng(0).standard_normal((320, 480, 3)), axis=1) / 20 + 0.5, 0, 1)
    lr = degradation.degrade(hr, true, 2, "direct").astype(np.float32)
    config = ke.KernelGANConfig() if args.iterations is None else ke.KernelGANConfig(iterations=args.iterations)
    estimator = ke.KernelEstimator(config)
    print(f"input {lr.shape[0]}x{lr.shape[1]}x{lr.shape[2]}, {config.iterations} iterations")
    for run in range(args.runs):
        start = time.perf_counter()
        kernel = estimator.estimate(lr, 2, seed=run)
        seconds = time.perf_counter() - start
        print(f"KernelGAN run {run + 1}{' (includes tracing)' if run == 0 else ''}: {seconds:.1f} s, "
              f"kernel error {ke.kernel_error(kernel, true):.4f} "
              f"(g2.0 guess {ke.kernel_error(kernels.isotropic_gaussian(21, 2.0), true):.4f})")
    from mzsr_tf.edge_kernel import EdgeKernelEstimator
    edges = EdgeKernelEstimator()
    start = time.perf_counter()
    for _ in range(args.runs):
        kernel = edges.estimate(lr, 2)
    seconds = (time.perf_counter() - start) / args.runs
    print(f"edges: {seconds:.3f} s per estimate (mean of {args.runs}), kernel error {ke.kernel_error(kernel, true):.4f}")


if __name__ == "__main__":
    main()
