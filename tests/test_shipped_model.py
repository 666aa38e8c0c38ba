"""The model this project ships (checkpoints/direct_x2) is the meta-trained one and loads from its preset path."""
import pathlib

from mzsr_tf import kernels, metrics
from mzsr_tf.adaptation import MetaTester
from mzsr_tf.checkpoints import load_weights
from mzsr_tf.config import get_preset
from mzsr_tf.imresize import imresize
from mzsr_tf.meta_test import list_images, read_rgb
from mzsr_tf.model import MZSRNet

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO = REPO / "dataset" / "demo"


def test_shipped_model_beats_bicubic_by_far_on_the_demo_images():
    """The bicubic-pretrained starting point is only ~0.4 dB above bicubic interpolation on these g2.0 inputs;
    a meta-trained model has learned the blur and must be several dB above it on every image."""
    preset = get_preset("direct_x2")
    model = MZSRNet()
    loaded = load_weights(model, str(REPO / preset.project_checkpoint))
    assert loaded.endswith("direct_x2/direct_x2")
    tester = MetaTester(model.trainable_variables, preset.adaptation_config(num_steps=1))
    kernel = kernels.load_kernel(DEMO / "kernel.mat")
    for lr_path, gt_path in zip(list_images(str(DEMO / "Input"), "input"), list_images(str(DEMO / "GT"), "GT")):
        lr, gt = read_rgb(lr_path), metrics.modcrop(read_rgb(gt_path), 2)
        result = tester.adapt(lr, kernel, output_shape=gt.shape[:2])
        bicubic = imresize(lr, scale=2.0, output_shape=gt.shape[:2], kernel="cubic").clip(0, 1)
        margin = metrics.psnr_y(result.sr, gt, 2) - metrics.psnr_y(bicubic, gt, 2)
        assert margin > 3.0, (lr_path, margin)
