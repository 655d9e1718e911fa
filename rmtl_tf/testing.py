"""Helpers for tests and benchmarks of rmtl_tf models."""

import numpy as np


def perturb_task_weights(model, task, seed):
    """Adds seeded noise (std 0.05) to `task`'s own weights of `model`;
    moving variances stay positive.

    Fresh task weights are equal in every task (identity modulators,
    BatchNorm 1/0), and the TFLite converter merges equal constant buffers:
    distinct, non-identity weights keep size and fingerprint measurements
    honest.
    """
    rng = np.random.default_rng(seed)
    for variable in model.task_variables(task):
        value = variable.numpy() + 0.05 * rng.standard_normal(
            variable.shape).astype(np.float32)
        if "moving_variance" in variable.path:
            value = np.abs(value) + 1e-3
        variable.assign(value)
