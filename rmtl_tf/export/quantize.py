"""TFLite conversion, float or post-training quantized, of a SavedModel's
signatures into one `.tflite` file.

Quantizations (the LiteRT converter's post-training recipes):
- `"none"`: float32 weights and compute.
- `"dynamic"`: int8 weights, float activations (dynamic-range); no data.
- `"float16"`: float16 weights, dequantized to float32 on CPU; no data.
- `"int8"`: full integer. Weights and activations int8 (activation ranges
  calibrated on representative images, one stream per signature), every
  op an int8 kernel (`TFLITE_BUILTINS_INT8`, so the conversion fails
  rather than leaving an op in float). The `image` input and the outputs
  stay float32: the file quantizes on entry and dequantizes on exit, so
  every runner and signature keeps its float interface.

Why not tensorflow-model-optimization: its `quantize_model` (QAT) and the
PTQ helpers in 0.8 run on the legacy `tf_keras` and reject Keras 3 models,
and installing it pulls `tf_keras` and the full `tensorflow` wheel. The
LiteRT converter quantizes the exported SavedModel instead, whatever built
it. For finer recipes (per-layer bit widths, int16 activations) on a
`.tflite` file, see the LiteRT quantizer (`litert-quantizer`, formerly
`ai-edge-quantizer`).
"""

import numpy as np
import tensorflow as tf

from rmtl_tf import atomic_files
from rmtl_tf.data import datasets

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
# Calibration images per signature when none are given.
DEFAULT_CALIBRATION_EXAMPLES = 32


def check_quantization(quantization):
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantization {quantization!r}. Expected "
                         f"one of {list(QUANTIZATIONS)}.")
    return quantization


def calibration_images(image_size, num_examples=DEFAULT_CALIBRATION_EXAMPLES,
                       dataset="synthetic", split="train", seed=0,
                       data_dir=None):
    """float32 images `[n, H, W, 3]` of `dataset`'s `split` for int8
    calibration (the training split: the accuracy report scores on
    another one)."""
    if any(s is None for s in image_size):
        raise ValueError("Calibration needs a fixed image size. Received: "
                         f"image_size={tuple(image_size)}")
    ds = datasets.load_split(dataset, split, [], tuple(image_size),
                             batch_size=8, num_examples=num_examples,
                             seed=seed, data_dir=data_dir)
    return np.concatenate([np.asarray(images) for images, _ in ds])[
        :num_examples]


def representative_dataset(signature_keys, images):
    """A generator of `(signature_key, {"image": [1, H, W, 3]})`: each
    signature calibrates on every image (its tensors are its own)."""
    images = np.asarray(images, np.float32)

    def generate():
        for key in signature_keys:
            for image in images:
                yield key, {"image": image[None]}
    return generate


def converter(saved_model_path, signature_keys, quantization="none",
              images=None):
    """A `TFLiteConverter` for `signature_keys`, set up for
    `quantization`; "int8" needs calibration `images`."""
    check_quantization(quantization)
    conv = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_path, signature_keys=list(signature_keys))
    conv.optimizations = []
    if quantization == "none":
        return conv
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        conv.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if images is None or len(images) == 0:
            raise ValueError("int8 quantization needs calibration images.")
        conv.representative_dataset = representative_dataset(
            signature_keys, images)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv


def write_tflite(saved_model_path, path, signature_keys, quantization="none",
                 images=None):
    """Converts the SavedModel's `signature_keys` into one `.tflite` file
    at `path` (written to a temporary file, then renamed)."""
    content = converter(saved_model_path, signature_keys, quantization,
                        images).convert()

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(content)

    return atomic_files.atomic_write(path, write)
