"""`ResizeLike`: resizes a feature map to the spatial size of another tensor."""

import keras
from keras import ops

INTERPOLATIONS = ("bilinear", "nearest")


@keras.saving.register_keras_serializable(package="rmtl_tf")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` to the height and width of `inputs[1]`.

    Unlike `keras.layers.Resizing` the target size is read from a tensor at
    call time, so models keep working when the image size is not fixed.

    Args:
        interpolation: "bilinear" (default) or "nearest".
        **kwargs: base layer arguments.

    Call arguments:
        inputs: a pair `(features, reference)`, both channels-last 4-D.
    """

    def __init__(self, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation

    def call(self, inputs):
        features, reference = inputs
        source = tuple(ops.shape(features)[1:3])
        size = tuple(ops.shape(reference)[1:3])
        if all(isinstance(s, int) for s in source + size):
            if source == size:
                return features
            return ops.image.resize(
                features, size, interpolation=self.interpolation
            )
        # Height or width known only at run time (a traced graph with
        # unknown image size): `ops.image.resize` checks `size > 0` in
        # Python, which a symbolic tensor cannot answer, so call the
        # backend op it wraps directly.
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # pylint: disable=import-outside-toplevel
            return tf.image.resize(features, size, method=self.interpolation)
        return ops.image.resize(
            features, size, interpolation=self.interpolation
        )

    def compute_output_shape(self, input_shape):
        features, reference = input_shape
        return (features[0], reference[1], reference[2], features[3])

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation})
        return config
