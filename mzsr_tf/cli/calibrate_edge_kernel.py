"""``scripts/calibrate_edge_kernel.py`` (``mzsr calibrate_edge_kernel``): fit the edge estimator's gain and offset on training images."""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, _add_verbose, _parser, _run_script, log, run_command
from mzsr_tf.config import ConfigError


def calibrate_edge_kernel_parser() -> argparse.ArgumentParser:
    """``scripts/calibrate_edge_kernel.py``: fit the edge estimator's gain and offset on training images."""
    parser = _parser("scripts/calibrate_edge_kernel.py",
        description="Fit the edges estimator's calibration (gain, offset; mzsr_tf/edge_kernel.py) on TRAINING images "
                    "degraded by rk-recipe kernels, and report the kernel error on held-out ones. Prints the values "
                    "to put in EdgeKernelConfig.",
        epilog="example:\n  python scripts/calibrate_edge_kernel.py --hr BSD200 --count 120 "
               "--fit 80 --underestimate-share 0.9\nexit codes: 0 success, 2 bad input, 1 anything else")
    parser.add_argument("--hr", required=True, help="folder of HR training images (never a test set)")
    parser.add_argument("--count", type=int, default=120, help="images used (the first, sorted)")
    parser.add_argument("--fit", type=int, default=80, help="of those, how many the fit uses (the rest are held out)")
    parser.add_argument("--underestimate-share", type=float, default=None,
                        help="fit the offset so that the estimated variance is at most the true one on this share of "
                             "the fit pairs (the defaults use 0.9); none: least squares")
    return _add_verbose(parser)


def calibrate_edge_kernel_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/calibrate_edge_kernel.py``."""
    return _run_script(calibrate_edge_kernel_parser(), calibrate_edge_kernel_from_flags, argv)


def calibrate_edge_kernel_from_flags(args) -> int:
    def calibrate(args) -> int:
        from mzsr_tf.data.images import list_images
        from mzsr_tf.edge_kernel import calibration_report
        if not 0 < args.fit < args.count:
            raise ConfigError(f"--fit must be between 1 and --count - 1, got {args.fit} of {args.count}")
        if args.underestimate_share is not None and not 0 < args.underestimate_share < 1:
            raise ConfigError(f"--underestimate-share must be in (0, 1), got {args.underestimate_share}")
        found = len(list_images(args.hr, "--hr", error=ConfigError))
        if found <= args.fit:
            raise ConfigError(f"--hr folder {args.hr} holds {found} image(s): --fit {args.fit} needs at least "
                              f"{args.fit + 1} (the fit's and at least one held out)")
        report = calibration_report(args.hr, args.count, args.fit, underestimate_share=args.underestimate_share)
        log.info("%s", json.dumps(report, indent=1))
        return EXIT_OK
    return run_command(calibrate, args)
