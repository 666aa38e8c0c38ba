"""Cut training patches from folders of HR images into TFRecord (the reference's schema) or HDF5.

    python scripts/generate_tfrecord.py --labelpath DIV2K_train_HR --tfrecord dataset/records/train_SR_MZSR
    python scripts/generate_tfrecord.py --labelpath DIV2K_train_HR --tfrecord dataset/records/train_SR_X2 \\
        --mode pretrain --scale 2

Exit codes: 0 done, 2 bad input (one line on stderr naming the file), 1 anything else.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labelpath", required=True, nargs="+",
                        help="folder(s) of HR images (PNG/BMP/JPEG), e.g. ./DIV2K_train_HR")
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
    parser.add_argument("--stride", type=int, default=120)
    parser.add_argument("--scale", type=int, default=2, help="pretrain mode: LR = HR / scale")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    parser.add_argument("--shards", type=int, default=1, help="split the output into N files")
    parser.add_argument("--skip-small", action="store_true",
                        help="skip images smaller than a patch instead of stopping")
    parser.add_argument("--quiet", action="store_true", help="no per-image progress")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mzsr_tf.data.build import PatchRecipe, build_records
    from mzsr_tf.data.images import ImageReadError
    from mzsr_tf.data.records import RecordError

    try:
        recipe = PatchRecipe(mode=args.mode, patch_size=args.patch, stride=args.stride,
                             scale=args.scale, seed=args.seed)
        summary = build_records(args.labelpath, args.tfrecord, recipe, fmt=args.format,
                                num_shards=args.shards, skip_small=args.skip_small,
                                progress=None if args.quiet else print)
    except (FileNotFoundError, ImageReadError, RecordError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    folder = os.path.dirname(os.path.abspath(args.tfrecord))
    print(f"Num of patches: {summary['num_records']} from {summary['num_images']} images "
          f"in {summary['seconds']:.1f} s")
    if summary["skipped_images"]:
        print(f"skipped {len(summary['skipped_images'])} image(s) smaller than a patch: "
              + ", ".join(summary["skipped_images"]))
    for entry in summary["files"]:
        print(f"  {os.path.join(folder, entry['file'])}: {entry['count']} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
