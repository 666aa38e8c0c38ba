"""mzsr-tf: a TensorFlow 2 port of MZSR (Soh, Cho and Cho, CVPR 2020).

Modules, one concept each:

- ``config``       hyper-parameters as frozen dataclasses and the four published presets
- ``imresize``     MATLAB-compatible resize (numpy and TensorFlow paths)
- ``kernels``      Gaussian blur kernels and ``.mat`` kernel files
- ``degradation``  ``(HR * k)↓s + n``: the one place that makes low-resolution images
- ``metrics``      ``rgb2y``, ``modcrop``, PSNR and SSIM on Y as the reference reports them
- ``model``        ``MZSRNet`` (Keras) and the pure ``forward(params, x)``
- ``checkpoints``  TF1 checkpoint reading, TF2 save/restore/export
- ``data``         image reading, MainSR patches, TFRecord/HDF5 records, tf.data pipelines
- ``inner``        the inner SGD step shared by meta-training and meta-test, loss weights
- ``training``, ``pretrain``, ``meta_train``   the two training stages and their shared loop
- ``adaptation``   the meta-test of one image (Algorithm 2) in one tf.function
- ``meta_test``, ``cli``   the meta-test over a folder; flags to library calls
- ``testsets``, ``evaluate``, ``plots``, ``curves``   paper test sets, tables, figures, learning curves
"""

__version__ = "0.1.0"
