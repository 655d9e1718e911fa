"""Per-task losses of the paper, as plain functions `(y_true, y_pred) -> scalar`.

Predictions are what the model outputs: logits for classification-like tasks,
values for regression tasks. Every loss averages over the valid pixels only.
"""

from keras import ops

IGNORE_LABEL = 255


def _masked_mean(values, mask):
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def masked_sparse_cross_entropy(y_true, y_pred):
    """Softmax cross-entropy over classes; label 255 is ignored."""
    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(y_pred.shape):
        labels = ops.squeeze(labels, axis=-1)
    valid = ops.not_equal(labels, IGNORE_LABEL)
    safe_labels = ops.where(valid, labels, ops.zeros_like(labels))
    logits = ops.cast(y_pred, "float32")
    per_pixel = ops.sparse_categorical_crossentropy(
        safe_labels, logits, from_logits=True
    )
    return _masked_mean(per_pixel, valid)


def masked_l1(y_true, y_pred):
    """Mean absolute error over pixels whose ground truth is not all zero.

    The mean is over the valid elements (pixels x channels), as the authors'
    normals and depth losses, so the paper's loss weights apply unchanged.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    errors = ops.abs(y_true - y_pred)
    valid = ops.any(ops.not_equal(y_true, 0.0), axis=-1, keepdims=True)
    mask = ops.cast(valid, errors.dtype) * ops.ones_like(errors)
    return _masked_mean(errors, mask)


def _binary_cross_entropy(y_true, logits, pos_weight=None):
    y_true = ops.cast(y_true, "float32")
    logits = ops.cast(logits, "float32")
    log_p = ops.log_sigmoid(logits)
    log_not_p = ops.log_sigmoid(-logits)
    if pos_weight is None:
        per_pixel = -(y_true * log_p + (1.0 - y_true) * log_not_p)
    else:
        per_pixel = -(
            pos_weight * y_true * log_p
            + (1.0 - pos_weight) * (1.0 - y_true) * log_not_p
        )
    valid = ops.not_equal(y_true, float(IGNORE_LABEL))
    return _masked_mean(per_pixel, valid)


def binary_cross_entropy(y_true, y_pred):
    """Sigmoid cross-entropy (saliency)."""
    return _binary_cross_entropy(y_true, y_pred)


def balanced_binary_cross_entropy(y_true, y_pred):
    """Weighted sigmoid cross-entropy, positives weighted 0.95 (edges)."""
    return _binary_cross_entropy(y_true, y_pred, pos_weight=0.95)
