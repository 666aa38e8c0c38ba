"""``scripts/generate_tfrecord.py`` (``mzsr generate_tfrecord``): training patches into TFRecord or HDF5."""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import EXIT_OK, OutputError, _add_verbose, _parser, _run_script, run_command


def generate_tfrecord_parser() -> argparse.ArgumentParser:
    """``scripts/generate_tfrecord.py``: training patches into TFRecord or HDF5."""
    parser = _parser("scripts/generate_tfrecord.py",
        description="Cut training patches from folders of HR images into TFRecord (the reference's "
                    "schema) or HDF5.",
        epilog="examples:\n"
               "  python scripts/generate_tfrecord.py --labelpath DIV2K_train_HR --tfrecord dataset/records/train_SR_MZSR\n"
               "  python scripts/generate_tfrecord.py --labelpath DIV2K_train_HR --tfrecord dataset/records/train_SR_X2 "
               "--mode pretrain --scale 2\n"
               "exit codes: 0 done, 2 bad input (one line naming the file or flag), 1 anything else")
    parser.add_argument("--labelpath", required=True, nargs="+",
                        help="folder(s) of HR images (PNG/BMP/JPEG/TIFF), e.g. ./DIV2K_train_HR")
    parser.add_argument("--tfrecord", default="train_SR_MZSR",
                        help="output file; '.tfrecord' (or '.h5' for --format hdf5) is appended "
                             "unless present (default: train_SR_MZSR)")
    parser.add_argument("--mode", choices=["mzsr", "pretrain"], default="mzsr",
                        help="mzsr: augmented HR patches ('label'); pretrain: HR + bicubic LR pairs "
                             "('label', 'image'), no augmentation")
    parser.add_argument("--format", choices=["tfrecord", "hdf5"], default=None,
                        help="default: from the extension of --tfrecord, else tfrecord")
    parser.add_argument("--patch", type=int, default=None,
                        help="HR patch side (default 64 for mzsr, 48 x scale for pretrain)")
    parser.add_argument("--stride", type=int, default=120, help="step between patch origins, in HR pixels")
    parser.add_argument("--scale", type=int, default=2, help="pretrain mode: LR = HR / scale")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    parser.add_argument("--shards", type=int, default=1, help="split the output into N files")
    parser.add_argument("--skip-small", action="store_true",
                        help="skip images smaller than a patch instead of stopping")
    parser.add_argument("--quiet", action="store_true", help="no per-image progress")
    return _add_verbose(parser)


def generate_tfrecord_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/generate_tfrecord.py``."""
    return _run_script(generate_tfrecord_parser(), generate_tfrecord_from_flags, argv)


def generate_tfrecord_from_flags(args) -> int:
    """Write the records and print a summary."""
    def generate(args) -> int:
        from mzsr_tf.atomic import check_output_file, write_errors_as
        from mzsr_tf.data.build import PatchRecipe, build_records, output_path
        recipe = PatchRecipe(mode=args.mode, patch_size=args.patch, stride=args.stride, scale=args.scale,
                             seed=args.seed)
        check_output_file(output_path(args.tfrecord, args.format), "--tfrecord")  # before any image is read
        with write_errors_as(OutputError):
            summary = build_records(args.labelpath, args.tfrecord, recipe, fmt=args.format,
                                    num_shards=args.shards, skip_small=args.skip_small,
                                    progress=None if args.quiet else print)
        folder = os.path.dirname(os.path.abspath(args.tfrecord))
        print(f"Num of patches: {summary['num_records']} from {summary['num_images']} images "
              f"in {summary['seconds']:.1f} s")
        if summary["skipped_images"]:
            print(f"skipped {len(summary['skipped_images'])} image(s) smaller than a patch: "
                  + ", ".join(summary["skipped_images"]))
        for entry in summary["files"]:
            print(f"  {os.path.join(folder, entry['file'])}: {entry['count']} records")
        return EXIT_OK
    return run_command(generate, args)
