"""The few building blocks the networks share: residual blocks and three custom layers.

* `residual_conv_block` / `residual_fc_block`: functional-API helpers (two layers + identity skip)
  used by every encoder, the U-Net, the pose auto-encoder and the stage-II mappers (paper Sec. 3.4).
* `RoiAlign`: bilinear crop-and-resize of the 7 body ROIs, written as two einsums so that it runs
  under XLA and in bfloat16 (`tf.image.crop_and_resize` does neither).
* `TileEmbedding`: a vector tiled to a feature map, how the generator is conditioned on appearance.
* `TiledInputConv2D`: the generator's stem, a Conv2D that does not convolve the tiled channels.
* `StraightThroughRound` / `straight_through_round`: binarizes the decoded keypoint visibility with
  an identity gradient.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

ActivationFactory = Callable[..., keras.layers.Layer]


def residual_conv_block(x: keras.KerasTensor, channels: int, name: str) -> keras.KerasTensor:
    """Two 3x3 ReLU convolutions added to an identity skip (PG2's residual block).

    A 1x1 convolution projects the skip when the input does not have `channels` channels. No
    normalization: the paper's encoders and generator have none.

    Args:
      x: KerasTensor `(batch, height, width, c)`.
      channels: int. Output channels.
      name: str. Prefix of the block's layer names.

    Returns:
      KerasTensor `(batch, height, width, channels)`.
    """
    shortcut = x
    if x.shape[-1] != channels:
        shortcut = keras.layers.Conv2D(channels, 1, name=f"{name}_projection")(x)
    h = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    h = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"{name}_conv2")(h)
    return keras.layers.Add(name=f"{name}_add")([shortcut, h])


def residual_fc_block(
    x: keras.KerasTensor, units: int, activation: ActivationFactory, name: str
) -> keras.KerasTensor:
    """Two fully connected layers, each followed by `activation`, added to an identity skip.

    A linear Dense layer projects the skip when the input does not have `units` features.

    Args:
      x: KerasTensor `(batch, d)`.
      units: int. Output features.
      activation: callable returning an activation layer when called with `name=`, e.g.
        `keras.layers.ReLU` or `functools.partial(keras.layers.LeakyReLU, negative_slope=0.2)`.
      name: str. Prefix of the block's layer names.

    Returns:
      KerasTensor `(batch, units)`.
    """
    shortcut = x
    if x.shape[-1] != units:
        shortcut = keras.layers.Dense(units, name=f"{name}_projection")(x)
    h = keras.layers.Dense(units, name=f"{name}_dense1")(x)
    h = activation(name=f"{name}_act1")(h)
    h = keras.layers.Dense(units, name=f"{name}_dense2")(h)
    h = activation(name=f"{name}_act2")(h)
    return keras.layers.Add(name=f"{name}_add")([shortcut, h])


def _interpolation_weights(start: tf.Tensor, end: tf.Tensor, size: int, crop_size: int) -> tf.Tensor:
    """Bilinear sampling weights along one axis, `[..., crop_size, size]`, float32.

    Row `i` holds the weights of the input pixels that output pixel `i` reads: the two neighbours of
    the sample position get `1 - frac` and `frac` (a tent function of the distance), and a row is all
    zero when the position falls outside the image, which is crop_and_resize's extrapolation value.
    The sample positions repeat crop_and_resize's arithmetic so that both agree to rounding.
    """
    scale = float(size - 1)
    if crop_size > 1:
        step = (end - start) * scale / float(crop_size - 1)
        offsets = tf.range(crop_size, dtype=tf.float32)
        positions = start[..., None] * scale + offsets * step[..., None]
    else:
        positions = (0.5 * (start + end) * scale)[..., None]
    grid = tf.range(size, dtype=tf.float32)
    weights = tf.nn.relu(1.0 - tf.abs(positions[..., None] - grid))
    inside = tf.logical_and(positions >= 0.0, positions <= scale)
    return weights * tf.cast(inside, tf.float32)[..., None]


@keras.saving.register_keras_serializable(package="keras_disentangle")
class RoiAlign(keras.layers.Layer):
    """Bilinear crop-and-resize of N boxes per example to `crop_size x crop_size`.

    Equal to `tf.image.crop_and_resize(features, boxes, box_indices, [crop_size] * 2)` with one row
    of boxes per example and extrapolation value 0, but written as two einsums with separable
    bilinear interpolation matrices built from the boxes. That form compiles under XLA
    (`jit_compile=True`), accepts bfloat16 features and is differentiable with respect to the
    features. The boxes stay float32 under a mixed policy (inputs are not autocast) because bfloat16
    would move a box edge by up to half a pixel.

    Args:
      `crop_size`: int. Side of each crop (48 for Market, 64 for DeepFashion).

    Input shape:
      A list `[features, boxes]`: `features` `(batch, height, width, channels)`, e.g.
      `(batch, 128, 64, 128)`; `boxes` `(batch, num_boxes, 4)` normalized `(y1, x1, y2, x2)` as
      `tf.image.crop_and_resize` reads them (pixel / (size - 1)).

    Output shape:
      `(batch, num_boxes, crop_size, crop_size, channels)` in the layer's compute dtype.

    Reference:
      Ma et al., CVPR 2018, Sec. 3.1 (foreground branch, 7 body ROIs resized to 48x48).
    """

    def __init__(self, crop_size: int, **kwargs):
        super().__init__(autocast=False, **kwargs)
        if crop_size < 1:
            raise ValueError(f"RoiAlign: `crop_size` must be a positive int; received crop_size={crop_size}.")
        self.crop_size = int(crop_size)

    def build(self, input_shape):
        features_shape, boxes_shape = input_shape
        if len(features_shape) != 4 or features_shape[1] is None or features_shape[2] is None:
            raise ValueError(
                "RoiAlign: `features` must have a static shape (batch, height, width, channels); "
                f"received shape {tuple(features_shape)}.")
        if len(boxes_shape) != 3 or boxes_shape[-1] != 4:
            raise ValueError(
                f"RoiAlign: `boxes` must have shape (batch, num_boxes, 4); received shape {tuple(boxes_shape)}.")
        self.built = True

    def call(self, inputs):
        features, boxes = inputs
        features = tf.cast(features, self.compute_dtype)
        boxes = tf.cast(boxes, tf.float32)
        height, width = features.shape[1], features.shape[2]
        rows = _interpolation_weights(boxes[..., 0], boxes[..., 2], height, self.crop_size)
        cols = _interpolation_weights(boxes[..., 1], boxes[..., 3], width, self.crop_size)
        # Rows first: the crop is then computed on `width` columns, the shorter side of a person.
        sampled_rows = tf.einsum("bnih,bhwc->bniwc", tf.cast(rows, features.dtype), features)
        return tf.einsum("bnjw,bniwc->bnijc", tf.cast(cols, features.dtype), sampled_rows)

    def compute_output_shape(self, input_shape):
        features_shape, boxes_shape = input_shape
        return (features_shape[0], boxes_shape[1], self.crop_size, self.crop_size, features_shape[3])

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size}


@keras.saving.register_keras_serializable(package="keras_disentangle")
class TileEmbedding(keras.layers.Layer):
    """Tiles a vector over a `height x width` grid, so that a conv net can read it at every pixel.

    Args:
      `height`: int. Rows of the output map.
      `width`: int. Columns of the output map.

    Input shape:
      `(batch, dim)`, e.g. the `(batch, 352)` appearance embedding.

    Output shape:
      `(batch, height, width, dim)`, e.g. `(batch, 128, 64, 352)`.

    Reference:
      Ma et al., CVPR 2018, Sec. 3.1 (FG and BG features tiled into 128x64x352 maps).
    """

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        if height < 1 or width < 1:
            raise ValueError(
                f"TileEmbedding: `height` and `width` must be positive; received height={height}, width={width}.")
        self.height = int(height)
        self.width = int(width)

    def call(self, inputs):
        return tf.tile(inputs[:, None, None, :], [1, self.height, self.width, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def _tap_validity(size: int, kernel: int) -> tf.Tensor:
    """`[size, kernel]` float32: 1 where tap `i` of a "same" stride-1 conv at position `y` falls inside."""
    offsets = tf.range(kernel) - (kernel - 1) // 2  # TensorFlow's "same" pads (kernel - 1) // 2 before.
    positions = tf.range(size)[:, None] + offsets[None, :]
    return tf.cast((positions >= 0) & (positions < size), tf.float32)


@keras.saving.register_keras_serializable(package="keras_disentangle")
class TiledInputConv2D(keras.layers.Conv2D):
    """A "same", stride-1 Conv2D over an input whose first `constant_channels` are a tiled vector.

    Equal to `keras.layers.Conv2D` (same variables, same output) on such an input, e.g. the
    generator's stem over `concat(TileEmbedding(e), heatmaps)`, but without convolving the constant
    channels over the whole map: where every tap of the kernel reads the same vector `e`, the conv
    of those channels at pixel `(y, x)` is `sum over the taps inside the image of K[tap]^T e`, which
    depends only on which border the pixel touches. So the layer computes `K[tap]^T e` once per tap
    (one small matmul), sums the taps inside the image with two 0/1 einsums (rows, then columns),
    and convolves only the remaining channels (the 18 heatmaps). At Market's full scale that is
    ~0.4 instead of ~7 GFLOP per image forward, and as much saved twice in the backward pass. It reads
    the vector at pixel (0, 0): the caller guarantees that those channels are constant (the
    generator feeds it the output of `TileEmbedding`); on any other input it is not a Conv2D.

    Args:
      constant_channels: int. Leading input channels that hold the tiled vector.
      **kwargs: `keras.layers.Conv2D`'s; strides, dilation and padding must stay at 1, 1, "same".
    """

    def __init__(self, constant_channels: int, filters: int, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        if self.strides != (1, 1) or self.dilation_rate != (1, 1) or self.data_format != "channels_last":
            raise ValueError(f"TiledInputConv2D: strides and dilation must be 1 and data_format channels_last; "
                             f"received strides={self.strides}, dilation_rate={self.dilation_rate}, "
                             f"data_format={self.data_format}.")
        if constant_channels < 1:
            raise ValueError(f"TiledInputConv2D: constant_channels must be positive; received {constant_channels}.")
        self.constant_channels = int(constant_channels)

    def build(self, input_shape):
        if input_shape[-1] <= self.constant_channels:
            raise ValueError(f"TiledInputConv2D: the input needs more than constant_channels="
                             f"{self.constant_channels} channels; received shape {tuple(input_shape)}.")
        super().build(input_shape)

    def call(self, inputs):
        split = self.constant_channels
        kernel = self.kernel
        k_h, k_w = self.kernel_size
        height, width = inputs.shape[1], inputs.shape[2]
        # (k_h, k_w, C, filters) -> per tap, K[tap]^T e: (batch, k_h, k_w, filters). In float32 under
        # a mixed policy: the backward pass sums over the whole map here, where Conv2D sums per pixel.
        constant_kernel = tf.cast(tf.reshape(tf.transpose(kernel[:, :, :split, :], [2, 0, 1, 3]), [split, -1]),
                                  tf.float32)
        vector = tf.cast(inputs[:, 0, 0, :split], tf.float32)
        taps = tf.reshape(tf.matmul(vector, constant_kernel), [-1, k_h, k_w, self.filters])
        rows, cols = _tap_validity(height, k_h), _tap_validity(width, k_w)
        constant = tf.einsum("xj,byjo->byxo", cols, tf.einsum("yi,bijo->byjo", rows, taps))
        outputs = self.convolution_op(inputs[..., split:], kernel[:, :, split:, :]) + tf.cast(constant, inputs.dtype)
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        config = super().get_config()
        config.pop("padding")
        return {**config, "constant_channels": self.constant_channels}


@tf.custom_gradient
def straight_through_round(x: tf.Tensor):
    """Rounds `x` to the nearest integer in the forward pass; the gradient is the identity.

    The straight-through estimator (Bengio et al., 2013) lets the pose decoder output binary
    visibility flags while its sigmoid still receives a gradient.

    Args:
      x: float tensor, any shape.

    Returns:
      `tf.round(x)`, same shape and dtype.
    """

    def grad(upstream):
        return upstream

    return tf.round(x), grad


@keras.saving.register_keras_serializable(package="keras_disentangle")
class StraightThroughRound(keras.layers.Layer):
    """Layer form of `straight_through_round`: forward `round(x)`, backward identity.

    Input shape:
      Any, e.g. `(batch, 18)` visibility probabilities.

    Output shape:
      Same as the input.
    """

    def call(self, inputs):
        return straight_through_round(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
