"""``scripts/estimate_kernel.py`` (``mzsr estimate_kernel``): the blur kernel of each image of a folder, from the image alone."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, OutputError, _add_gpu, _add_verbose, _parser, _run_script, log, run_command
from mzsr_tf.cli.flags import ESTIMATOR_CHOICES, ESTIMATOR_DEFAULT, estimator_from_flags


def estimate_kernel_parser() -> argparse.ArgumentParser:
    """``scripts/estimate_kernel.py``: the blur kernel of each image of a folder, from the image alone."""
    parser = _parser("scripts/estimate_kernel.py",
        description="Estimate the blur kernel of every image in --inputpath from the image alone (KernelGAN, "
                    "mzsr_tf/kernel_estimation.py). Writes SAVEPATH/<image>.mat (key 'kernel', 21x21, the size "
                    "MZSR's kernels have), SAVEPATH/<image>_kernel.png and SAVEPATH/estimation.json (settings, "
                    "seconds per image). SAVEPATH can then be given to scripts/main.py as --kernelpath.",
        epilog="example:\n  python scripts/estimate_kernel.py --inputpath dataset/testsets/benchmark/Input/rk/Set14 "
               "--savepath results/rk_kernels/Set14 --scale 2\n"
               "exit codes: 0 success, 2 bad input (the message names the file), 1 anything else")
    _add_gpu(parser)
    parser.add_argument("--inputpath", required=True, help="folder of LR images (8-bit RGB)")
    parser.add_argument("--savepath", required=True, help="folder for the kernels, figures and estimation.json")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help="the images' super-resolution factor")
    parser.add_argument("--seed", type=int, default=0, help="seed of the estimator's randomness (>= 0)")
    parser.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default=ESTIMATOR_DEFAULT,
                        help="edges (a Gaussian fitted at the edges, < 1 s per image) or kernelgan (KernelGAN)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="KernelGAN's iterations (default 2000, sized for <= 60 s per BSD100 image on 2 CPU cores)")
    return _add_verbose(parser)


def estimate_kernel_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/estimate_kernel.py``."""
    return _run_script(estimate_kernel_parser(), estimate_kernel_from_flags, argv,
                       lambda args: args.seed < 0 and f"--seed must be >= 0, got {args.seed}")


def estimate_kernel_from_flags(args) -> int:
    def estimate(args) -> int:
        from mzsr_tf.atomic import write_errors_as
        from mzsr_tf.blind import estimate_folder
        estimator = estimator_from_flags(args.estimator, args.iterations, "--iterations")
        with write_errors_as(OutputError):
            record = estimate_folder(args.inputpath, args.savepath, args.scale, estimator, args.seed, log=log.info)
        log.info("%d kernels written to %s (%.1f s per image)", len(record["images"]), args.savepath,
                 record["seconds_per_image"])
        return EXIT_OK
    return run_command(estimate, args)
