"""Bank weights from Keras' ImageNet MobileNetV2 (`--bank=imagenet
--backbone=mobilenet_v2`).

`load(width_multiplier)` fetches the weights file of
`keras.applications.MobileNetV2(weights="imagenet", include_top=False,
alpha=width_multiplier)` once, with `keras.utils.get_file`, into Keras'
cache (`~/.keras/models`, or `$KERAS_HOME/models`), builds that network
with it and converts it by layer name (`bank_weights_from_mobilenet_v2`):
our backbone (`mobilenet_backbone`) uses Keras' layer names, so a conv's
`"<name>/kernel"` (regular or depthwise) and a BatchNorm's
`"<name>/gamma"`, `beta`, `moving_mean`, `moving_variance` are the
bank weights of `rmtl_tf.models.bank` as they are. The final 1x1 `Conv_1`
and `Conv_1_bn` are left out (DeepLabv3+ does not use them). Every
BatchNorm must have Keras' epsilon 1e-3 (`mobilenet_backbone.BN_EPSILON`,
the one our MobileNetV2 uses): the moving statistics then carry over
unchanged.

Keras publishes ImageNet weights for alpha in 0.35, 0.5, 0.75, 1.0, 1.3 and
1.4 (`--width_multiplier`). The no-top files hold the same kernels for
every input size; the 224 one is used.

Without network access, download the file elsewhere and put it in Keras'
cache under its own name (the error says where), or convert it yourself
and pass `--bank=npz:PATH`.
"""

import keras
import numpy as np

from rmtl_tf.models import weights_cache
from rmtl_tf.models.mobilenet_backbone import BN_EPSILON

# keras.applications.mobilenet_v2's BASE_WEIGHT_PATH.
WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/"
               "keras-applications/mobilenet_v2/")
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# Layers of Keras' network that DeepLabv3+'s MobileNetV2 leaves out.
EXCLUDED = ("Conv_1", "Conv_1_bn")
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def weights_file_name(alpha):
    """Keras' file name of the no-top ImageNet weights of `alpha`."""
    return ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
            f"{float(alpha)}_224_no_top.h5")


def weights_path(alpha, cache_dir=None):
    """The local path of the weights file of `alpha`, fetched once."""
    if alpha not in ALPHAS:
        raise ValueError(
            f"--bank=imagenet has no ImageNet MobileNetV2 for "
            f"--width_multiplier={alpha}: Keras publishes alpha in "
            f"{list(ALPHAS)}. Pick one of them, or pass the weights with "
            "--bank=npz:PATH.")
    return weights_cache.fetch(
        WEIGHTS_URL + weights_file_name(alpha), cache_dir,
        what=f"ImageNet MobileNetV2 (alpha {alpha}) weights")


def bank_weights_from_mobilenet_v2(model):
    """Bank weights dict (`rmtl_tf.models.bank` naming) of a
    `keras.applications.MobileNetV2`, by layer name (`Conv_1` left out).

    Every layer with weights must be a bias-free conv (regular or
    depthwise) or a BatchNorm with epsilon 1e-3, or it is an error.
    """
    weights = {}
    for layer in model.layers:
        if not layer.weights or layer.name in EXCLUDED:
            continue
        if isinstance(layer, (keras.layers.Conv2D,
                              keras.layers.DepthwiseConv2D)):
            if layer.use_bias:
                raise ValueError(f"MobileNetV2 layer {layer.name!r} has a "
                                 "bias; expected Keras' bias-free convs.")
            weights[f"{layer.name}/kernel"] = np.asarray(
                layer.kernel.numpy(), np.float32)
        elif isinstance(layer, keras.layers.BatchNormalization):
            if abs(layer.epsilon - BN_EPSILON) > 1e-12:
                raise ValueError(
                    f"MobileNetV2 BatchNorm {layer.name!r} has epsilon "
                    f"{layer.epsilon}; our MobileNetV2 uses Keras' "
                    f"{BN_EPSILON}.")
            for attr in BN_WEIGHTS:
                weights[f"{layer.name}/{attr}"] = np.asarray(
                    getattr(layer, attr).numpy(), np.float32)
        else:
            raise ValueError(f"Unexpected MobileNetV2 layer {layer.name!r} "
                             f"({type(layer).__name__}) with weights.")
    return weights


def load(width_multiplier=1.0, cache_dir=None):
    """Bank weights of Keras' ImageNet MobileNetV2 with `alpha =
    width_multiplier` (fetched once, see the module docstring)."""
    path = weights_path(width_multiplier, cache_dir)
    model = keras.applications.MobileNetV2(
        input_shape=(None, None, 3), alpha=width_multiplier,
        include_top=False, weights=path)
    return bank_weights_from_mobilenet_v2(model)
