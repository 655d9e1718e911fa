"""Pretrains an ordinary ResNet whose weights become the frozen bank.

The method assumes an ImageNet-pretrained bank. Offline, we pretrain the
plain (single-path, fully trainable) backbone on a pretext task of the
synthetic world: multi-label recognition of which object classes a scene
holds, on the "pretrain" split (scenes no task ever trains or evaluates on).
The resulting conv kernels are the bank; its BatchNorm and shortcut weights
initialize every task's own copies.
"""

import sys

import keras
import numpy as np

from rmtl_tf.data import synthetic_dataset, synthetic_scenes
from rmtl_tf.models import bank as bank_lib

# Object classes (all but the background classes wall and floor).
OBJECT_CLASSES = tuple(range(2, synthetic_scenes.NUM_CLASSES))


def _presence(semseg):
    """Multi-hot vector of the object classes present in each label map."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    flat = tf.reshape(tf.cast(semseg, tf.int32), (tf.shape(semseg)[0], -1))
    return tf.stack([tf.cast(tf.reduce_any(tf.equal(flat, c), axis=1),
                             tf.float32) for c in OBJECT_CLASSES], axis=1)


def build_pretext_model(backbone, width_multiplier, image_size):
    plain = bank_lib.build_plain_backbone(backbone, width_multiplier,
                                          image_size)
    pooled = keras.layers.GlobalAveragePooling2D(name="pretext_pool")(
        plain.output["P5"])
    logits = keras.layers.Dense(len(OBJECT_CLASSES),
                                name="pretext_logits")(pooled)
    return plain, keras.Model(plain.inputs, logits, name="pretext")


def pretrain(config, log=print):
    """Pretrains for `config.pretrain_steps` and returns bank weights."""
    plain, pretext = build_pretext_model(
        config.backbone, config.width_multiplier, config.image_size)
    log(f"Pretraining the bank: {config.backbone} x{config.width_multiplier}"
        f" on synthetic scenes, {config.pretrain_steps} steps.")
    if config.pretrain_steps:
        ds = synthetic_dataset.synthetic_dataset(
            "pretrain", config.train_examples, config.image_size,
            config.batch_size, seed=config.seed, shuffle=True, repeat=True,
            tasks=["semseg"])
        ds = ds.map(lambda image, labels: (image, _presence(labels["semseg"])))
        pretext.compile(
            optimizer=keras.optimizers.Adam(config.pretrain_learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)],
            jit_compile=config.jit_compile)
        pretext.fit(ds, epochs=1, steps_per_epoch=config.pretrain_steps,
                    shuffle=False,
                    verbose=1 if sys.stdout.isatty() else 2)
    weights = bank_lib.weights_from_plain(plain)
    log(f"Bank: {sum(int(np.prod(w.shape)) for k, w in weights.items() if k.endswith('/kernel'))} "
        "conv weights.")
    return weights
