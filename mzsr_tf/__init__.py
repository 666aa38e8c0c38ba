"""mzsr-tf: a TensorFlow 2 port of MZSR (Soh, Cho and Cho, CVPR 2020).

Modules, one concept each:

- ``config``       hyper-parameters as frozen dataclasses and the four published presets
- ``imresize``     MATLAB-compatible resize (numpy and TensorFlow paths)
- ``kernels``      Gaussian blur kernels and ``.mat`` kernel files
- ``degradation``  ``(HR * k)↓s + n``: the one place that makes low-resolution images
- ``metrics``      ``rgb2y``, ``modcrop``, PSNR and SSIM on Y as the reference reports them
- ``model``        ``MZSRNet`` (Keras) and the pure ``forward(params, x)``
- ``checkpoints``  TF1 checkpoint reading, TF2 save/restore/export
"""

__version__ = "0.1.0"
