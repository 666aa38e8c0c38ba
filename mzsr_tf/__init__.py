"""mzsr-tf: a TensorFlow 2 port of MZSR (Soh, Cho and Cho, CVPR 2020).

Modules, one concept each:

- ``config``       hyper-parameters as frozen, checked dataclasses; ``RunConfig``; the four published presets
- ``imresize``     MATLAB-compatible resize (numpy and TensorFlow paths)
- ``kernels``      Gaussian blur kernels, ``.mat`` kernel files, per-image kernel sources
- ``degradation``  ``(HR * k)↓s + n``: the one place that makes low-resolution images
- ``metrics``      ``rgb2y``, ``modcrop``, PSNR and SSIM on Y as the reference reports them
- ``model``        ``MZSRNet`` (Keras) and the pure ``forward(params, x)``
- ``checkpoints``  TF1 checkpoint reading, TF2 save/restore/export, weight averaging
- ``data``         image listing and reading, MainSR patches, TFRecord/HDF5 records, tf.data pipelines
- ``inner``        the inner SGD step shared by meta-training and meta-test, loss weights
- ``training``     the loop, run folders, locks, signals, strategies shared by the two training stages
- ``pretrain``, ``meta_train``   the two training stages
- ``adaptation``   the graph of the adaptation steps (one ``tf.while_loop``)
- ``meta_test``    the meta-test of one image (``MetaTester``, Algorithm 2) and of a folder
- ``testsets``, ``evaluate``, ``plots``, ``curves``   paper test sets and numbers, tables, figures,
  learning curves
- ``cli``          every script's flags, their library calls and exit codes

The main entry points are importable from the package (loaded on first use, so ``import mzsr_tf``
does not import TensorFlow)::

    from mzsr_tf import MZSRNet, MetaTester, load_weights, get_preset
    model = MZSRNet()
    load_weights(model, "checkpoints/direct_x2/direct_x2")
    tester = MetaTester(model.trainable_variables, get_preset("direct_x2").adaptation_config(num_steps=10))
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "MetaTester": "mzsr_tf.meta_test",
    "run_folder": "mzsr_tf.meta_test",
    "MetaTrainer": "mzsr_tf.meta_train",
    "run_meta_training": "mzsr_tf.meta_train",
    "inner_step": "mzsr_tf.inner",
    "load_weights": "mzsr_tf.checkpoints",
    "MZSRNet": "mzsr_tf.model",
    "RunConfig": "mzsr_tf.config",
    "get_preset": "mzsr_tf.config",
    "preset_for_model": "mzsr_tf.config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """The public entry points, imported from their modules on first use (PEP 562)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mzsr_tf' has no attribute {name!r}")
