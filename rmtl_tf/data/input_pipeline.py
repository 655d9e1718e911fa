"""The tf.data pipeline every dataset goes through.

    examples -> [cache] -> [shuffle] -> [repeat] -> decode + transform
    (parallel map) -> batch -> prefetch   (tf.data autotuning off:
    `without_autotune`)

`examples` yield one stored example per element (TFDS features, or the
synthetic scenes' arrays); `decode_fn` makes them decoded examples
(`decoders.py`), then the training path applies the paper's augmentation
(`transforms.train_transform`) and the evaluation path pads to the model's
size (`transforms.eval_transform`). Batches are `(image, {task: label})`:
image float32 (B, H, W, 3) RGB in [0, 255] (the model normalizes inside
its graph), class labels int32 (B, H, W), other labels float32
(B, H, W, C).
"""

import os

import tensorflow as tf

from rmtl_tf.data import decoders, transforms

DEFAULT_SHUFFLE_BUFFER = 1024
PREFETCH_BATCHES = 2


def map_parallelism():
    """Parallel decode/augment calls: the CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def without_autotune(ds):
    """`ds` with tf.data's autotuning off (fixed parallelism and prefetch).

    Autotuning runs a model thread whose sleep between optimizations
    doubles (10 ms, 20 ms, ... up to a minute); an iterator deleted while
    it sleeps waits for the sleep to end (TF 2.21). `Model.fit` deletes its
    iterator when it returns: measured, a 10-step fit of ResNet-18 returned
    33 s after its last step, so every fit, evaluation and test ran up to
    twice as long as its steps. The pipeline is cheap next to the train
    step (benchmarks/bench_input_pipeline.py), so fixed settings lose
    nothing.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _same_stream_per_iterator(ds, shuffle_buffer, seed):
    """`ds` shuffled, repeated and reshuffled every pass: the same stream
    for every iterator of the result.

    A shuffle's reshuffle seeds come from a generator shared by all the
    iterators of one dataset: a second iterator continues its draws
    instead of starting over. Keras `fit` under a `tf.distribute` strategy
    opens an iterator to build the model, then another to train on, so the
    trained stream was not the one a single device trains on, and on a
    small split (the first iterator's prefetch crossing a pass) changed
    from run to run. Built inside `flat_map`, the shuffle is created anew
    by each iterator, from the same seeds: the stream is the one the first
    iterator of a plain `shuffle().repeat()` yields, whatever iterated the
    dataset before.
    """

    @tf.autograph.experimental.do_not_convert
    def passes(_):
        return ds.shuffle(shuffle_buffer, seed=seed,
                          reshuffle_each_iteration=True).repeat()

    return tf.data.Dataset.range(1).flat_map(passes)


def build(examples, tasks, image_size, batch_size, *, augment=False,
          shuffle=False, repeat=False, seed=0, cache=False, decode_fn=None,
          shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, drop_remainder=None,
          skip=0, full_resolution=False):
    """Batches of `examples` for `tasks` at `image_size` (see module doc).

    Args:
        examples: `tf.data.Dataset` of stored examples (dicts).
        tasks: label keys to keep.
        image_size: (height, width) of every batch.
        batch_size: examples per batch.
        augment: the paper's training augmentation, else evaluation padding.
        shuffle, repeat: shuffle (before decoding, so the buffer holds
            encoded examples) and repeat forever.
        seed: seeds the shuffle and each example's augmentation draw.
        cache: keep `examples` in memory after the first pass.
        decode_fn: `example -> decoded example`; by default
            `decoders.decode_example(example, tasks)`.
        drop_remainder: defaults to `repeat`.
        skip: examples of the (shuffled, repeated) stream to skip before
            decoding: a resumed run starts at the batch after its
            checkpoint. The stream is a deterministic function of `seed`
            and each example's augmentation draw of its position, so
            skipping `step * batch_size` examples continues exactly where
            the interrupted run was; only the cheap shuffle of encoded
            examples is replayed, nothing is decoded or augmented.
        full_resolution: evaluation as the authors: images padded to at
            least `image_size`, never cropped, labels at their original
            size (`transforms.full_resolution_transform`). Batches then
            group images of one original size (a batch may hold fewer than
            `batch_size`; the order within the split changes, the set of
            examples does not).
    """
    if full_resolution and augment:
        raise ValueError("full_resolution is for evaluation; it cannot be "
                         "combined with augment.")
    tasks = list(tasks)
    size = tuple(int(s) for s in image_size)
    decode_fn = decode_fn or (lambda ex: decoders.decode_example(ex, tasks))
    ds = examples
    if cache:
        ds = ds.cache()
    if shuffle and repeat:
        ds = _same_stream_per_iterator(ds, shuffle_buffer, seed)
    elif shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed,
                        reshuffle_each_iteration=True)
    elif repeat:
        ds = ds.repeat()

    def prepare(index, example):
        features = decode_fn(example)
        if augment:
            example_seed = tf.stack([tf.constant(seed, tf.int64), index])
            features = transforms.train_transform(features, size,
                                                  example_seed)
        elif full_resolution:
            features = transforms.full_resolution_transform(features, size)
        else:
            features = transforms.eval_transform(features, size)
        return transforms.to_model_inputs(features, tasks)

    ds = ds.enumerate()
    if skip:
        ds = ds.skip(skip)
    ds = ds.map(prepare, num_parallel_calls=map_parallelism())
    if full_resolution:
        ds = ds.group_by_window(
            key_func=_size_key,
            reduce_func=lambda _, window: window.batch(batch_size),
            window_size=batch_size)
    else:
        ds = ds.batch(batch_size, drop_remainder=repeat
                      if drop_remainder is None else drop_remainder)
    return without_autotune(ds.prefetch(PREFETCH_BATCHES))


def _size_key(image, labels):
    """Groups examples by original size: that of the labels (two sizes
    may pad to one image size), or of the image when there are none."""
    first = next(iter(labels.values()), image)
    shape = tf.shape(first, out_type=tf.int64)
    return shape[0] * (1 << 20) + shape[1]
