"""The MZSR network, with two calling conventions.

The reference network (``model.py`` and ``ops.py`` of JWSoh/MZSR) is ``depth`` 3x3 convolutions with
SAME padding and a bias, ReLU after all but the last, and a global residual::

    output = x + conv_depth(relu(... relu(conv_1(x)) ...))

With the paper's ``ModelConfig(width=64, depth=8, channels=3)`` that is 3->64, six 64->64, 64->3 and
225,091 parameters.

- ``MZSRNet(config)`` is a Keras model on ``Input(shape=(None, None, channels))``: fully convolutional,
  so one model serves training patches and whole images.
- ``forward(params, x)`` is a pure function of an explicit parameter list, for the inner loops of
  meta-training and meta-test (fast weights ``theta - lr * grad`` are plain tensors, not variables).

Both compute the same thing with the same TensorFlow ops: ``model(x)`` and
``forward(model.trainable_variables, x)`` are bit-identical (tested).

Parameter order and names: ``model.trainable_variables`` is ``[conv1 kernel, conv1 bias, conv2 kernel,
..., conv<depth> bias]``, the order of ``param_names(config)``.  The names are the reference's TF1
variable names *with* their ``MODEL/`` scope, exactly as they appear in the published checkpoints:
``PARAM_NAMES == ('MODEL/conv1/kernel', 'MODEL/conv1/bias', ..., 'MODEL/conv8/bias')``.  Keras 3 names
its variables differently (``variable.path == 'conv1/kernel'``), hence this explicit mapping.

Mixed precision: under the ``mixed_float16`` Keras policy (or with a float16 ``x`` given to
``forward``) the convolutions run in float16 while the variables, the global residual addition and the
output stay float32, so the input image is never rounded to float16.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from mzsr_tf.config import PRECISIONS, ModelConfig, RuntimeConfig

SCOPE = "MODEL"
"""The TF1 variable scope of the reference's weights."""


def param_names(config: ModelConfig = ModelConfig()) -> Tuple[str, ...]:
    """The reference names of the ``2 * depth`` parameters, in ``forward``'s order.

    ``('MODEL/conv1/kernel', 'MODEL/conv1/bias', ..., f'MODEL/conv{depth}/bias')``.
    """
    return tuple(f"{SCOPE}/conv{i}/{kind}"
                 for i in range(1, config.depth + 1) for kind in ("kernel", "bias"))


def param_shapes(config: ModelConfig = ModelConfig()) -> Dict[str, Tuple[int, ...]]:
    """``{reference name: shape}`` in ``param_names`` order.

    Kernels are ``[3, 3, in_channels, out_channels]`` (TF's HWIO layout, as in the reference),
    biases ``[out_channels]``.
    """
    shapes = {}
    for i in range(1, config.depth + 1):
        c_in = config.channels if i == 1 else config.width
        c_out = config.channels if i == config.depth else config.width
        shapes[f"{SCOPE}/conv{i}/kernel"] = (3, 3, c_in, c_out)
        shapes[f"{SCOPE}/conv{i}/bias"] = (c_out,)
    return shapes


def count_params(config: ModelConfig = ModelConfig()) -> int:
    """Number of scalar parameters (225,091 for the paper's network).

    Public API: a configuration's size without building the network (the README's 225,091).
    """
    total = 0
    for shape in param_shapes(config).values():
        size = 1
        for dim in shape:
            size *= dim
        total += size
    return total


PARAM_NAMES: Tuple[str, ...] = param_names(ModelConfig())
"""The 16 reference names of the paper's network, ``MODEL/conv1/kernel`` ... ``MODEL/conv8/bias``."""


def kernel_initializer(seed: Optional[int] = None) -> keras.initializers.Initializer:
    """TF1's ``tf.variance_scaling_initializer()`` as the reference uses it.

    Fan-in mode, scale 1.0, truncated normal: ``stddev = sqrt(1 / fan_in) / 0.8796...`` truncated at
    two standard deviations, so the weights' standard deviation is ``sqrt(1 / fan_in)``, with
    ``fan_in = 3 * 3 * in_channels``.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0, mode="fan_in", distribution="truncated_normal", seed=seed)


def _layer_seed(seed: Optional[int], layer: int) -> Optional[int]:
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, layer]).generate_state(1)[0])


class MZSRNet(keras.Model):
    """The MZSR network as a Keras model on ``Input(shape=(None, None, channels))``.

    Call it on ``[N, H, W, channels]`` float32 images (an interpolated low-resolution image, "ILR",
    values nominally in [0, 1]); it returns the super-resolved ``[N, H, W, channels]`` float32 image,
    not clipped.  Layers are named ``conv1`` ... ``conv<depth>`` and ``residual``.

    Kernels are initialised as TF1's ``variance_scaling_initializer`` (``kernel_initializer``), biases
    with zeros.  ``seed`` (an int) makes the initial weights reproducible (layer ``i`` draws from a
    seed derived from ``(seed, i)`` by ``np.random.SeedSequence``); ``None`` draws fresh weights.
    """

    def __init__(self, config: ModelConfig = ModelConfig(), seed: Optional[int] = None,
                 name: str = SCOPE):
        inputs = keras.Input(shape=(None, None, config.channels), name="ilr")
        hidden = inputs
        for i in range(1, config.depth + 1):
            last = i == config.depth
            hidden = keras.layers.Conv2D(
                filters=config.channels if last else config.width,
                kernel_size=3,
                padding="same",
                activation=None if last else "relu",
                kernel_initializer=kernel_initializer(_layer_seed(seed, i)),
                bias_initializer="zeros",
                name=f"conv{i}",
            )(hidden)
        # The residual is added in float32 even under mixed precision (see the module docstring).
        outputs = keras.layers.Add(name="residual", dtype="float32")([inputs, hidden])
        super().__init__(inputs=inputs, outputs=outputs, name=name)
        self.model_config = config

    @property
    def param_names(self) -> Tuple[str, ...]:
        """Reference names of ``self.trainable_variables``, in the same order."""
        return param_names(self.model_config)


def compute_dtype(precision: str) -> tf.DType:
    """The convolutions' dtype of ``forward`` for a precision of ``config.PRECISIONS``: float16 /
    bfloat16 for the mixed precisions (weights, losses and updates stay float32), else float32.
    An unknown precision is a ``ConfigError`` listing them."""
    return tf.as_dtype(PRECISIONS[RuntimeConfig(precision=precision).precision])


def _forward_dtypes(x: tf.Tensor, compute_dtype: Optional[tf.DType]) -> Tuple[tf.DType, tf.DType]:
    """(compute dtype, output dtype) of ``forward`` for input ``x``; see ``forward``."""
    output_dtype = tf.float64 if x.dtype == tf.float64 else tf.float32
    if compute_dtype is not None:
        return tf.as_dtype(compute_dtype), output_dtype
    if x.dtype == tf.float16 or keras.mixed_precision.global_policy().compute_dtype == "float16":
        return tf.float16, output_dtype
    return output_dtype, output_dtype


def forward(params: Sequence[tf.Tensor], x: tf.Tensor,
            compute_dtype: Optional[tf.DType] = None) -> tf.Tensor:
    """The network as a pure function of its parameters: ``x + net(x)``.

    Args:
      params: ``2 * depth`` tensors (or variables) in ``param_names`` order: ``[kernel_1, bias_1, ...,
        kernel_depth, bias_depth]``, kernels ``[3, 3, c_in, c_out]``, biases ``[c_out]``.  For example
        ``model.trainable_variables`` or fast weights derived from them.
      x: ``[N, H, W, channels]`` float16, float32 or float64 images (ILR, nominally in [0, 1]).
      compute_dtype: dtype of the convolutions.  ``None`` means float16 if ``x`` is float16 or the global
        Keras policy computes in float16 (``mixed_float16``), otherwise ``x``'s dtype.

    Returns:
      ``[N, H, W, channels]``, float64 if ``x`` is float64, otherwise float32 (also under mixed
      precision: the residual is added in float32).  Not clipped.

    Pure TensorFlow ops, no state: usable eagerly, under ``tf.function`` and inside nested
    ``tf.GradientTape``s (second-order meta-gradients).  Parameters are cast to the compute dtype,
    so gradients flow back to float32 variables.
    """
    if len(params) % 2 or len(params) < 4:
        raise ValueError(f"forward needs 2 * depth parameters (kernel, bias per convolution, "
                         f"depth >= 2), got {len(params)}")
    x = tf.convert_to_tensor(x)
    compute, output_dtype = _forward_dtypes(x, compute_dtype)
    num_convs = len(params) // 2
    hidden = tf.cast(x, compute)
    for i in range(num_convs):
        kernel = tf.cast(params[2 * i], compute)
        bias = tf.cast(params[2 * i + 1], compute)
        # bias_add, not "+": it keeps forward bit-identical to Keras's Conv2D under tf.function too
        # (grappler fuses a plain add differently and the results differ in the last bit).
        hidden = tf.nn.bias_add(tf.nn.convolution(hidden, kernel, strides=1, padding="SAME"), bias)
        if i < num_convs - 1:
            hidden = tf.nn.relu(hidden)
    return tf.cast(x, output_dtype) + tf.cast(hidden, output_dtype)
