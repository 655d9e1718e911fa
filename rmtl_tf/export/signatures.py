"""The served functions: one signature per task and `serving_default`.

Every signature takes `image`, float32 `[batch, height, width, 3]` RGB
pixels in [0, 255], and returns the activated predictions keyed by task
(see `rmtl_tf.models.multitask_model.predictions`). The batch is always
dynamic; height and width are the model's training size, or dynamic
(`None`, any size >= 32) when the model was built without a size or the
export asks for it: the network is fully convolutional and resizes its
outputs to the input, so any size runs.

TF Serving does no shape check of its own (it feeds the request tensor to
the graph as is), so each signature checks its image first, in the graph:
rank 4, 3 channels, the exported height and width (or >= 32). A bad image
fails with one `InvalidArgumentError` naming what was expected and the
shape received, before any convolution runs. The dtype is fixed by the
signature: TF Serving's REST API converts JSON numbers to float32; a gRPC
tensor of another dtype is rejected by TensorFlow ("expects arg[0] to be
float"), and the clients in `serving_client` check it before sending.
"""

import tensorflow as tf

from rmtl_tf.models.multitask_model import MultiTaskModel, predictions

DEFAULT_SIGNATURE = "serving_default"
INPUT_NAME = "image"
CHANNELS = 3
MIN_IMAGE_SIZE = 32


def served_tasks(model):
    """The tasks `model` predicts: a `MultiTaskModel`'s, or the keys of a
    functional model's dict output (a folded single-task network)."""
    if isinstance(model, MultiTaskModel):
        return list(model.tasks)
    if isinstance(model.output, dict):
        return list(model.output)
    raise ValueError(f"Model {model.name!r} must output a dict keyed by "
                     "task.")


def model_image_size(model):
    """(height, width) of `model`'s input; None where any size runs."""
    if isinstance(model, MultiTaskModel):
        return tuple(model.image_size)
    return tuple(model.input.shape[1:3])


def image_spec(image_size, batch_size=None):
    """The `TensorSpec` of the served image; `image_size` may hold None."""
    height, width = image_size
    return tf.TensorSpec([batch_size, height, width, CHANNELS], tf.float32,
                         name=INPUT_NAME)


def describe(image_size):
    height, width = (f">={MIN_IMAGE_SIZE}" if s is None else s
                     for s in image_size)
    return (f"float32 [batch, {height}, {width}, {CHANNELS}] (RGB pixels in "
            "[0, 255])")


def check_image(image, image_size):
    """Asserts `image`'s rank, channels and size; returns it once checked.

    Safe for any rank: the shape is padded before it is indexed, so a
    rank-3 image fails this check, not a strided slice.
    """
    shape = tf.shape(image)
    rank_ok = tf.equal(tf.size(shape), 4)
    padded = tf.concat([shape, tf.fill([4], -1)], axis=0)[:4]
    ok = [rank_ok, tf.equal(padded[3], CHANNELS)]
    for axis, size in zip((1, 2), image_size):
        ok.append(tf.greater_equal(padded[axis], MIN_IMAGE_SIZE)
                  if size is None else tf.equal(padded[axis], size))
    # summarize=8: print the whole received shape, whatever its rank.
    check = tf.debugging.Assert(
        tf.reduce_all(tf.stack(ok)),
        [f"image must be {describe(image_size)}; received shape", shape],
        summarize=8)
    # The check runs before the network: a plain dependency, not only the
    # function's ordering of stateful ops.
    with tf.control_dependencies([check]):
        return tf.identity(image)


def serving_fn(model, tasks, image_size):
    """`image -> {task: prediction}` for `tasks` of `model`.

    A task's signature runs only that task's path (`task_model`), so it
    traces one path, not every task's.
    """
    tasks = list(tasks)
    runner = model
    if isinstance(model, MultiTaskModel) and tasks != list(model.tasks):
        runner = model.task_model(tasks)

    def serve(image):
        image = check_image(image, image_size)
        outputs = runner(image, training=False)
        # A reduced-precision model (bfloat16 export) still serves float32.
        return {t: predictions(t, tf.cast(outputs[t], tf.float32))
                for t in tasks}
    return serve


def add_endpoints(archive, model, image_size):
    """`serving_default` (every task, registered first), then one endpoint
    per task, on a `keras.export.ExportArchive`. Returns their names."""
    spec = image_spec(image_size)
    tasks = served_tasks(model)
    archive.add_endpoint(DEFAULT_SIGNATURE,
                         serving_fn(model, tasks, image_size),
                         input_signature=[spec])
    for task in tasks:
        archive.add_endpoint(task, serving_fn(model, [task], image_size),
                             input_signature=[spec])
    return [DEFAULT_SIGNATURE, *tasks]


def tf_variable(variable):
    """The `tf.Variable` behind a `keras.Variable` (TensorFlow backend)."""
    value = getattr(variable, "value", variable)
    return value if isinstance(value, tf.Variable) else variable

