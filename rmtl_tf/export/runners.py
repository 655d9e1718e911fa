"""Run an export from Python: a SavedModel or a TFLite file, per task.

Both runners check the input before it reaches the graph and name what was
expected, so a wrong shape or dtype is one clear error instead of a kernel
failure deep inside.
"""

import os

import numpy as np

from rmtl_tf.export.signatures import INPUT_NAME, MIN_IMAGE_SIZE


def check_image(image, expected_shape, signature, available):
    """Validates `image` against `expected_shape` ([-1 or None = any])."""
    if signature not in available:
        raise ValueError(f"Unknown signature {signature!r}. Available: "
                         f"{sorted(available)}.")
    image = np.asarray(image)
    if image.dtype != np.float32:
        raise ValueError(
            f"Signature {signature!r} takes float32 RGB pixels in [0, 255]; "
            f"received dtype {image.dtype}. Cast with image.astype('float32')"
            ".")
    expected = [None if (s is None or s < 0) else int(s)
                for s in expected_shape]
    # A dynamic height or width takes any size the network runs at.
    too_small = [axis for axis in (1, 2) if image.ndim == 4
                 and len(expected) == 4 and expected[axis] is None
                 and image.shape[axis] < MIN_IMAGE_SIZE]
    if image.ndim != len(expected) or too_small or any(
            e is not None and e != s for e, s in zip(expected, image.shape)):
        names = {0: "batch", 1: f"height>={MIN_IMAGE_SIZE}",
                 2: f"width>={MIN_IMAGE_SIZE}"}
        shown = [names.get(i, "any") if e is None else e
                 for i, e in enumerate(expected)]
        raise ValueError(
            f"Signature {signature!r} takes an image of shape {shown} "
            f"(batch, height, width, channels); received shape "
            f"{list(image.shape)}.")
    return image


class SavedModelRunner:
    """Runs the signatures of an exported SavedModel."""

    def __init__(self, path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        self._tf = tf
        if not (os.path.isfile(os.path.join(path, "saved_model.pb")) or
                os.path.isfile(os.path.join(path, "saved_model.pbtxt"))):
            raise FileNotFoundError(
                f"{path!r} is not a SavedModel directory (no saved_model.pb):"
                " expected a version folder written by export.py, e.g. "
                "exports/rmtl/1.")
        try:
            self.loaded = tf.saved_model.load(path)
        except (ValueError, OSError, tf.errors.OpError) as e:
            raise ValueError(f"SavedModel {path!r} is damaged and does not "
                             f"load: {str(e).splitlines()[0]}") from e
        self.signatures = dict(self.loaded.signatures)

    def __call__(self, image, signature="serving_default"):
        fn = self.signatures.get(signature)
        expected = (fn.structured_input_signature[1][INPUT_NAME].shape
                    if fn is not None else [])
        image = check_image(image, list(expected), signature, self.signatures)
        out = fn(**{INPUT_NAME: self._tf.constant(image)})
        return {k: v.numpy() for k, v in out.items()}


def litert():
    """(Interpreter, OpResolverType): LiteRT's (`ai_edge_litert`), else
    TensorFlow's own copy (`tf.lite`, deprecated, same API), so `.tflite`
    files run in the quick-start install too. Raises `ImportError` with
    what to install when neither is there."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType  # pylint: disable=import-outside-toplevel
        return Interpreter, OpResolverType
    except ImportError:
        pass
    import warnings  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    lite = getattr(tf, "lite", None)
    if lite is None or not hasattr(lite, "Interpreter"):
        raise ImportError("Running .tflite files needs LiteRT: pip install "
                          "ai-edge-litert")

    def interpreter(**kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Its deprecation notice.
            return lite.Interpreter(**kwargs)
    return interpreter, lite.experimental.OpResolverType


class TFLiteRunner:
    """Runs the signatures of an exported `.tflite` file (LiteRT).

    `xnnpack=True` (LiteRT's default) runs float and int8 kernels through
    the XNNPACK delegate, with `num_threads` threads; False uses the
    built-in kernels only.
    """

    def __init__(self, path, num_threads=None, xnnpack=True):
        Interpreter, OpResolverType = litert()  # pylint: disable=invalid-name
        resolver = (OpResolverType.BUILTIN if xnnpack else
                    OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TFLite file not found: {path!r}")
        try:
            self.interpreter = Interpreter(
                model_path=path, num_threads=num_threads,
                experimental_op_resolver_type=resolver)
        except ValueError as e:
            raise ValueError(
                f"{path!r} is not a TFLite model ({str(e).splitlines()[0]}):"
                " expected a .tflite file written by export.py.") from e
        self.signatures = self.interpreter.get_signature_list()
        self._runners = {name: self.interpreter.get_signature_runner(name)
                         for name in self.signatures}

    def __call__(self, image, signature="serving_default"):
        expected = []
        runner = self._runners.get(signature)
        if runner is not None:
            details = runner.get_input_details()[INPUT_NAME]
            expected = [int(s) for s in details["shape_signature"]]
        image = check_image(image, expected, signature, self.signatures)
        return runner(**{INPUT_NAME: image})
