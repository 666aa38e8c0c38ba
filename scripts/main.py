#!/usr/bin/env python
"""MZSR entry point with the reference's flags.

Meta-test (default): super-resolve every image of --inputpath by adapting the network to it.
    python scripts/main.py --gpu 0 --inputpath LR_DIR --gtpath GT_DIR --kernelpath kernel.mat \
        --savepath OUT --model 0 --num 10
With no arguments it runs on the demo images in dataset/demo/ with the project's own model.

Meta-training (from the bicubic-pretrained weights; resumes runs/meta/ModelT if it exists):
    python scripts/main.py --train --trial T [--step S] [--config overrides.json] [--iterations N]

Exit codes: 0 success, 2 bad input (the message names the file), 1 anything else.
"""
import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run from a clone without installing too
DEMO = os.path.join(REPO_ROOT, "dataset", "demo")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", default="0", help="GPU index, as CUDA_VISIBLE_DEVICES (harmless without a GPU)")
    # meta-test
    parser.add_argument("--inputpath", default=os.path.join(DEMO, "Input"), help="folder of LR images")
    parser.add_argument("--gtpath", default=os.path.join(DEMO, "GT"),
                        help="folder of GT images, paired with the inputs by sorted order ('' for none)")
    parser.add_argument("--kernelpath", default=os.path.join(DEMO, "kernel.mat"),
                        help="blur kernel .mat (key 'kernel'); '' means bicubic degradation")
    parser.add_argument("--savepath", default="results/demo", help="SR images go to SAVEPATH/NN/")
    parser.add_argument("--model", type=int, choices=[0, 1, 2, 3], default=0,
                        help="0 Directx2, 1 Multi-scale, 2 Bicubicx2, 3 Directx4")
    parser.add_argument("--num", type=int, default=1, dest="num_steps",
                        help="number of adaptation steps (any positive integer)")
    parser.add_argument("--checkpoint", default=None,
                        help="TF1 or TF2 checkpoint prefix, or a folder holding one (default: the preset's)")
    parser.add_argument("--scale", type=float, default=None, help="default: the preset's scale")
    parser.add_argument("--noise", type=float, default=0.0, help="std of noise added to the son")
    parser.add_argument("--backprojection", action="store_true", help="refine by 4 back-projection iterations")
    # meta-training
    parser.add_argument("--train", action="store_true", dest="is_train", help="meta-train instead of testing")
    parser.add_argument("--trial", type=int, default=0, help="training run number (folder ModelT)")
    parser.add_argument("--step", type=int, default=None,
                        help="the step to resume; must match the latest checkpoint of the run "
                             "(default: resume whatever is there, or start)")
    parser.add_argument("--config", default=None, help="JSON file of MetaTrainConfig overrides (training)")
    parser.add_argument("--iterations", type=int, default=None, help="train until this meta-iteration")
    parser.add_argument("--tfrecord", default=None, help="training records (TFRecord or HDF5)")
    parser.add_argument("--checkpoint-dir", default=None,
                        help="runs go to CHECKPOINT_DIR/Model<trial> (default runs/meta)")
    parser.add_argument("--transfer", default=None,
                        help="pre-trained weights to start from ('none': random; default: "
                             "../shared/mzsr_reference/Pretrained/Pretrained)")
    parser.add_argument("--first-order-until", type=int, default=None,
                        help="first-order meta-gradients before this iteration, second order from it")
    parser.add_argument("--freeze-loss-weights", action="store_true",
                        help="keep the query-loss weights at 1/K (the reference's behaviour)")
    parser.add_argument("--print-every", type=int, default=None, help="log and summarise every N iterations")
    parser.add_argument("--save-every", type=int, default=None, help="checkpoint every N iterations")
    parser.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"], default="float32",
                        help="float32 reproduces the reference; mixed_*: float16/bfloat16 convolutions with "
                             "float32 weights (meta-test: both; training: mixed_float16)")
    parser.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                        help="tf.distribute strategy: tasks are split across replicas")
    args = parser.parse_args(argv)
    if args.num_steps < 1:
        parser.error(f"--num must be a positive integer, got {args.num_steps}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu

    from mzsr_tf import cli  # imported after the device flags, so TensorFlow sees them

    if args.is_train:
        return cli.meta_train_from_flags(args)
    return cli.meta_test_from_flags(args)


if __name__ == "__main__":
    sys.exit(main())
