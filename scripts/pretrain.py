#!/usr/bin/env python
"""Large-scale "bicubic" pretraining of the MZSR network (the reference's Large-Scale_Training).

    python scripts/pretrain.py --trial 1 --tfrecord dataset/records/train_SR_X2.tfrecord

Records come from `scripts/generate_tfrecord.py --mode pretrain`. The run folder is
CHECKPOINT_DIR/Model<trial> (default runs/pretrain/Model<trial>); an existing run is resumed.
Exit codes: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input (the message names the file).
"""
import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a clone without installing too


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")
    parser.add_argument("--trial", type=int, default=0, help="training run number (folder Model<trial>)")
    parser.add_argument("--step", type=int, default=None,
                        help="the step to resume; must match the latest checkpoint (default: resume or start)")
    parser.add_argument("--config", default=None, help="JSON file of PretrainConfig overrides")
    parser.add_argument("--tfrecord", default=None, help="pretraining records (TFRecord or HDF5)")
    parser.add_argument("--iterations", type=int, default=None, help="train until this step")
    parser.add_argument("--checkpoint-dir", default=None, help="default runs/pretrain")
    parser.add_argument("--print-every", type=int, default=None, help="log and summarise every N steps")
    parser.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps")
    parser.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                        default="float32", help="dtype of the convolutions (variables stay float32)")
    parser.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                        help="tf.distribute strategy: the batch is split across replicas")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from mzsr_tf import pretrain  # imported after the device flags, so TensorFlow sees them

    return pretrain.train_from_flags(args)


if __name__ == "__main__":
    sys.exit(main())
