"""``scripts/make_demo.py`` (``mzsr make_demo``): regenerate dataset/demo/ from scikit-image's public-domain samples (the builder is ``mzsr_tf.demo``)."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, _add_verbose, _parser, _run_script, run_command
from mzsr_tf.config import ConfigError
from mzsr_tf.demo import DEMO_DIR


def make_demo_parser() -> argparse.ArgumentParser:
    """``scripts/make_demo.py``: regenerate dataset/demo/ from scikit-image's public-domain samples."""
    parser = _parser(
        "scripts/make_demo.py",
        description="Regenerate dataset/demo/: LR inputs, GT and kernel.mat from the CC0 / public-domain sample "
                    "photographs scikit-image ships (skimage.data: chelsea, coffee, astronaut; see "
                    "dataset/demo/README.md). Each GT is a crop of a photograph; its LR input is made by "
                    "mzsr_tf.degradation with the isotropic Gaussian of covariance 2.0 (21x21) and direct x2 "
                    "subsampling (the paper's g^d_2.0). scikit-image is needed only here.",
        epilog="example:\n  pip install scikit-image && python scripts/make_demo.py --out dataset/demo\n"
               "exit codes: 0 success, 2 scikit-image missing or bad output folder, 1 anything else")
    parser.add_argument("--out", default=DEMO_DIR, help="folder to write Input/, GT/ and kernel.mat into")
    parser.add_argument("--real-photos", default=None, metavar="DIR",
                        help="instead, write the real-photograph examples (rocket, coffee, chelsea: whole, at their "
                             "native resolution, no GT, no kernel) into DIR, for --estimate-kernel")
    return _add_verbose(parser)


def make_demo_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/make_demo.py``."""
    return _run_script(make_demo_parser(), make_demo_from_flags, argv)


def make_demo_from_flags(args) -> int:
    """Write the demo's kernel, GT crops and LR inputs (or the real photographs)."""
    def make(args) -> int:
        from mzsr_tf import demo
        try:
            if args.real_photos:
                demo.write_real_photos(args.real_photos)
            else:
                demo.write_demo(args.out)
        except demo.MissingScikitImage as error:
            raise ConfigError(str(error)) from None
        return EXIT_OK
    return run_command(make, args)
