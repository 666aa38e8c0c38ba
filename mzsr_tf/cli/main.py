"""``scripts/main.py`` (``mzsr main``): the reference's flags; meta-test by default, meta-train with ``--train``."""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from mzsr_tf.cli.conventions import (EXIT_OK, REPO_ROOT, ExitOnSignal, OutputError, _add_gpu, _add_verbose, _parser,
                                     _run_script, _with_option, log, run_command)
from mzsr_tf.cli.flags import (ESTIMATOR_CHOICES, ESTIMATOR_DEFAULT, MODEL_CHOICES, MODEL_HELP, TileProgress,
                               _add_tiling_flags, _add_training_flags, _report_training, _training_folder,
                               estimator_from_flags, tile_policy_from_flags)
from mzsr_tf.config import PRECISIONS, SON_GRIDS, ConfigError, MetaTrainConfig, Preset, override, preset_for_model
from mzsr_tf.demo import DEMO_DIR, DEMO_KERNEL


def main_parser() -> argparse.ArgumentParser:
    """``scripts/main.py``: the reference's flags (meta-test by default, ``--train`` to meta-train)."""
    parser = _parser("scripts/main.py",
        description="MZSR with the reference's flags. Meta-test (default): super-resolve every image "
                    "of --inputpath by adapting the network to it; with no arguments it runs on the demo "
                    "images in dataset/demo/ with the project's own model. --train: meta-train from the "
                    "bicubic-pretrained weights (resumes CHECKPOINT_DIR/Model<trial> if it exists).",
        epilog="examples:\n"
               "  python scripts/main.py --gpu 0 --inputpath LR_DIR --gtpath GT_DIR "
               "--kernelpath kernel.mat --savepath OUT --model 0 --num 10\n"
               "  python scripts/main.py --train --trial 1 --model 3 --config recipe.json --iterations 5000\n"
               "exit codes: 0 success, 2 bad input (the message names the file or flag), 1 anything else")
    _add_gpu(parser)
    test = parser.add_argument_group("meta-test")
    test.add_argument("--inputpath", default=os.path.join(DEMO_DIR, "Input"), help="folder of LR images")
    test.add_argument("--gtpath", default=os.path.join(DEMO_DIR, "GT"),
                      help="folder of GT images, paired with the inputs by sorted order ('' for none)")
    test.add_argument("--kernelpath", default=None,
                      help="blur kernel .mat (key 'kernel', summing to 1), or a folder of <input name>.mat "
                           "per image; '' means bicubic degradation (default: dataset/demo/kernel.mat)")
    test.add_argument("--estimate-kernel", action="store_true",
                      help="estimate each input's kernel from the input itself (KernelGAN, mzsr_tf/blind.py), "
                           "save it as SAVEPATH/NN/<input>.mat and use it; not with --kernelpath")
    test.add_argument("--figure", default=None, metavar="PNG",
                      help="also write a figure: per input, crops of its bicubic upscale and of the SR output, "
                           "and the kernel used")
    test.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default=ESTIMATOR_DEFAULT,
                      help="with --estimate-kernel: edges (a Gaussian fitted at the edges, < 1 s; the better one on "
                           "the blind benchmark) or kernelgan (KernelGAN, ~30 s per image)")
    test.add_argument("--estimate-iterations", type=int, default=None,
                      help="with --estimate-kernel --estimator kernelgan: KernelGAN's iterations (default 2000)")
    test.add_argument("--normalize-kernel", action="store_true",
                      help="divide each kernel by its sum instead of refusing one whose sum is not 1 "
                           "(within 1e-3)")
    test.add_argument("--savepath", default="results/demo",
                      help="SR images and results.json go to SAVEPATH/NN/ (checked writable before the run)")
    test.add_argument("--model", type=int, choices=MODEL_CHOICES, default=None,
                      help=f"preset: {MODEL_HELP} (default 0; --train: the run's own when resuming)")
    test.add_argument("--num", type=int, default=1, dest="num_steps",
                      help="number of adaptation steps (any positive integer)")
    test.add_argument("--checkpoint", default=None,
                      help="TF1 or TF2 checkpoint prefix, or a folder holding one (default: the preset's)")
    test.add_argument("--scale", type=float, default=None, help="super-resolution factor (default: the preset's)")
    test.add_argument("--noise", type=float, default=0.0, help="std of noise added to the son (images in [0, 1])")
    test.add_argument("--backprojection", action="store_true", help="refine by 4 back-projection iterations")
    test.add_argument("--self-ensemble", action="store_true",
                      help="average the eight flips/rotations of each input, each adapted on its own with its "
                           "kernel turned alike (beyond the paper; 8x the time)")
    test.add_argument("--son-grid", choices=SON_GRIDS, default=None,
                      help="exact (default): the son of the input cropped at the bottom and right to a multiple "
                           "of the scale (beyond the reference; the output still covers the whole input); "
                           "reference: the son of the whole input, as the reference (its direct subsampling grid "
                           "is stretched when a side is not a multiple of the scale)")
    test.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                      help="float32 (default) reproduces the reference; mixed_*: float16/bfloat16 "
                           "convolutions with float32 weights (meta-test and training)")
    _add_tiling_flags(test)
    train = parser.add_argument_group("meta-training (--train)")
    train.add_argument("--train", action="store_true", dest="is_train", help="meta-train instead of testing")
    _add_training_flags(train, MetaTrainConfig)
    train.add_argument("--transfer", default=None,
                       help="pre-trained weights to start from ('none' or '': random weights; default "
                            "'auto': the authors' Pretrained if dropped into checkpoints/Pretrained/, else "
                            "the project's checkpoints/pretrained_x2)")
    train.add_argument("--first-order-until", type=int, default=None,
                       help="first-order meta-gradients before this iteration, second order from it")
    train.add_argument("--freeze-loss-weights", action="store_true",
                       help="keep the query-loss weights at 1/K (the reference's behaviour)")
    return _add_verbose(parser)


def main_script(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/main.py``: meta-test, or meta-train with ``--train``."""
    return _run_script(main_parser(), lambda args: (meta_train_from_flags if args.is_train else
                                                     meta_test_from_flags)(args), argv, _check_main_flags)


def _check_main_flags(args) -> Optional[str]:
    """``scripts/main.py``'s flags checked before TensorFlow is imported: ``--num`` (a usage error), and
    in test mode every flag of the meta-test's ``AdaptationConfig`` (``--scale``, ``--noise``, ...: a
    ``ConfigError`` naming the flag, with the ranges of ``mzsr_tf.config``)."""
    if args.num_steps < 1:
        return f"--num must be a positive integer, got {args.num_steps}"
    if not args.is_train:
        adaptation_config_from_flags(args, preset_for_model(args.model if args.model is not None else 0))
    return None


def adaptation_config_from_flags(args, preset: Preset):
    """The meta-test's ``AdaptationConfig``: the preset's, with ``--num``, ``--scale``, ``--noise``,
    ``--backprojection``, ``--self-ensemble``, ``--son-grid``, ``--fast-crops`` and ``--precision`` applied (each
    bad value named by its flag)."""
    config = preset.adaptation_config()
    for option, key, value in (("--num", "num_steps", args.num_steps), ("--scale", "scale", args.scale),
                               ("--noise", "noise_std", args.noise),
                               ("--backprojection", "back_projection", bool(args.backprojection)),
                               ("--self-ensemble", "self_ensemble", bool(getattr(args, "self_ensemble", False))),
                               ("--son-grid", "son_grid", getattr(args, "son_grid", None)),
                               ("--fast-crops", "son_crops", getattr(args, "fast_crops", None)),
                               ("--precision", "precision", args.precision)):
        if value is not None:
            config = _with_option(option, value, lambda: override(config, {key: value}))
    return config


# --------------------------------------------------------------------------- meta-test

def meta_test_from_flags(args) -> int:
    """``scripts/main.py`` test mode; SIGINT (Ctrl-C) and SIGTERM end it at once (``ExitOnSignal``)."""
    with ExitOnSignal("the meta-test"):
        return run_command(_meta_test, args)


def _meta_test(args) -> int:
    """Inputs, kernels and the output folder are checked before the checkpoint is loaded (fast
    failure); a write failure mid-run is an ``OutputError`` naming the file."""
    from mzsr_tf.atomic import check_output_file, check_output_folder, write_errors_as
    from mzsr_tf.checkpoints import checkpoint_for_preset, load_weights
    from mzsr_tf.kernels import KernelSource
    from mzsr_tf.meta_test import MetaTester, before_after_figure, load_inputs, output_folder, run_folder
    from mzsr_tf.model import MZSRNet

    preset = preset_for_model(args.model if args.model is not None else 0)
    config = adaptation_config_from_flags(args, preset)
    log.info("model %d: %s, x%g, %s down-sampling, %d step(s), inner_lr %s, %s", preset.model_index,
             preset.reference_name, config.scale, config.ds_method, config.num_steps,
             list(config.inner_lr.rates(config.num_steps)), config.precision)
    normalize = bool(getattr(args, "normalize_kernel", False))
    gt_dir = args.gtpath or None
    estimating = None
    if getattr(args, "estimate_iterations", None) is not None and not args.estimate_kernel:
        raise ConfigError("--estimate-iterations is a setting of --estimate-kernel, which is not given")
    if getattr(args, "estimator", None) != ESTIMATOR_DEFAULT and not args.estimate_kernel:
        raise ConfigError("--estimator is a setting of --estimate-kernel, which is not given")
    if getattr(args, "estimate_kernel", False):
        estimating, kernel_source = _estimating_kernels(args, config)
    else:
        kernelpath = args.kernelpath if args.kernelpath is not None else DEMO_KERNEL
        # a .mat file, a folder of <input>.mat, or ''
        kernel_source = KernelSource.from_path(kernelpath, normalize=normalize)
        if kernelpath:
            log.info("%s", kernel_source.description)
        else:
            log.info("no --kernelpath: the son is made by bicubic ('cubic') down-sampling")
        inputs = load_inputs(args.inputpath, kernel_source, config.scale, gt_dir=gt_dir, log=log.info,
                             son_grid=config.son_grid, ds_method=config.ds_method)
    tiling = tile_policy_from_flags(args, TileProgress())
    if estimating is None:  # (estimated kernels' inputs are read after the estimator loads)
        for path, image in zip(inputs.input_paths, inputs.images):
            _check_tiling(tiling, path, image.shape, config, records=2 if gt_dir else 1)
    check_output_folder(output_folder(args.savepath, config.num_steps), "--savepath")
    if args.figure:
        check_output_file(args.figure, "--figure")
    checkpoint = checkpoint_for_preset(args.checkpoint, preset, REPO_ROOT)
    model = MZSRNet()
    loaded = load_weights(model, checkpoint)
    if estimating is not None:  # the slow part, after every cheap check (the checkpoint loads)
        inputs = load_inputs(args.inputpath, kernel_source, config.scale, gt_dir=gt_dir, log=log.info,
                             son_grid=config.son_grid, ds_method=config.ds_method)
    tester = MetaTester(model.trainable_variables, config, tiling)
    extra_info = {"checkpoint": loaded, "model": preset.reference_name, "kernel_normalized": normalize}
    if estimating is not None:
        extra_info["kernel_estimation"] = estimating.record()
    with write_errors_as(OutputError):
        summary = run_folder(tester, args.inputpath, args.savepath, kernel_source, gt_dir=gt_dir, log=log.info,
                             extra_info=extra_info, inputs=inputs)
        if args.figure:
            log.info("figure: %s", before_after_figure(summary, output_folder(args.savepath, config.num_steps),
                                                       args.figure))
    return EXIT_OK


def _check_tiling(tiling, path: str, shape, config, records: int) -> None:
    """The tile of an input under ``--tile``/``--max-memory``, found before the checkpoint loads (a
    ``TilingError`` names the input); ``run_folder`` keeps the SR images as uint8 unless self-ensemble or
    back-projection refine the float ones."""
    from mzsr_tf.config import ModelConfig
    from mzsr_tf.meta_test import refines_float_sr
    from mzsr_tf.tiling import TilingError
    try:
        tiling.tile_for(shape, config.scale, ModelConfig().depth, records, quantized=not refines_float_sr(config))
    except TilingError as error:
        raise TilingError(f"{path}: {error}") from None


def _estimating_kernels(args, config):
    """``--estimate-kernel``: refused with ``--kernelpath``; every input checked (readable, large enough)
    before any estimation; the estimates go beside the SR output, ``SAVEPATH/NN/<input>.mat``."""
    from mzsr_tf.blind import EstimatingKernels, check_estimable
    from mzsr_tf.data.images import list_images
    from mzsr_tf.meta_test import MetaTestError, output_folder, read_rgb

    if args.kernelpath is not None:
        raise ConfigError("--estimate-kernel and --kernelpath together: give a kernel, or have it estimated, not both")
    paths = list_images(args.inputpath, "input", error=MetaTestError)
    images = [read_rgb(path) for path in paths]
    estimator = estimator_from_flags(args.estimator, args.estimate_iterations, "--estimate-iterations")
    check_estimable(paths, estimator, images)
    save_dir = output_folder(args.savepath, config.num_steps)
    estimating = EstimatingKernels(save_dir, config.scale, estimator, log=log.info)
    log.info("no kernel given: each input's kernel is estimated (%s, %d images) and saved in %s",
             args.estimator, len(paths), save_dir)
    return estimating, estimating.source


# --------------------------------------------------------------------------- meta-training

def meta_train_from_flags(args) -> int:
    """``scripts/main.py --train``: 0 done or interrupted (saved), 1 non-finite loss, 2 bad input."""
    def train(args) -> int:
        from mzsr_tf.meta_train import run_meta_training
        run, directory = _training_folder(args, MetaTrainConfig)
        return _report_training(run_meta_training(run, directory, requested_step=args.step))
    return run_command(train, args)
