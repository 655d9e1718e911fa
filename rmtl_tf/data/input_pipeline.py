"""The tf.data pipeline every dataset goes through.

    examples -> [cache] -> [shuffle] -> [repeat] -> decode + transform
    (parallel map) -> batch -> prefetch

`examples` yield one stored example per element (TFDS features, or the
synthetic scenes' arrays); `decode_fn` makes them decoded examples
(`decoders.py`), then the training path applies the paper's augmentation
(`transforms.train_transform`) and the evaluation path pads to the model's
size (`transforms.eval_transform`). Batches are `(image, {task: label})`:
image float32 (B, H, W, 3) RGB in [0, 255] (the model normalizes inside
its graph), class labels int32 (B, H, W), other labels float32
(B, H, W, C).
"""

import tensorflow as tf

from rmtl_tf.data import decoders, transforms

DEFAULT_SHUFFLE_BUFFER = 1024


def build(examples, tasks, image_size, batch_size, *, augment=False,
          shuffle=False, repeat=False, seed=0, cache=False, decode_fn=None,
          shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, drop_remainder=None,
          skip=0):
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
    """
    tasks = list(tasks)
    size = tuple(int(s) for s in image_size)
    decode_fn = decode_fn or (lambda ex: decoders.decode_example(ex, tasks))
    ds = examples
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed,
                        reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def prepare(index, example):
        features = decode_fn(example)
        if augment:
            example_seed = tf.stack([tf.constant(seed, tf.int64), index])
            features = transforms.train_transform(features, size,
                                                  example_seed)
        else:
            features = transforms.eval_transform(features, size)
        return transforms.to_model_inputs(features, tasks)

    ds = ds.enumerate()
    if skip:
        ds = ds.skip(skip)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=repeat if drop_remainder is None
                  else drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
