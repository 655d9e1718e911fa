"""Incremental export (`export_lib` and `export_metadata`): one model
grows from 1 to 5 tasks, exported after each task is added. Each export
is a new version; the old tasks' outputs are bit-identical across
versions; the files grow by one task's weights, never by a bank."""

import os

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import rmtl_tf
from rmtl_tf.export import export_lib, export_metadata, fingerprint

from conftest import ALL_TASKS, SMALL, build, randomize_task

# Per-task weights must dominate a task's graph overhead in the files
# (about 80 kB of TFLite subgraph, 10 kB of checkpoint keys), for the
# issue's budget `bank + T x per-task x 1.05` to be meaningful on a small
# model: a 1.49 MB bank and 1.64 MB per task. Measured: SavedModel
# variables 0.98-0.97 of the budget, TFLite 0.995-0.991 (T = 1..5).
BIG = {"width_multiplier": 4.0, "head_channels": 64,
       "low_level_channels": 8}
PER_TASK_SLACK = 1.05
# Exports cost ~2T graph traces and conversions each (T=5: ~50 s on 2
# cores): the default run grows the model to 2 tasks, `-m slow` to 5.
DEFAULT_TASKS = 2


def _bytes(variables):
    return 4 * sum(int(np.prod(v.shape)) for v in variables)


def _dir_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def _grower(export_dir, family):
    """`get(n)` -> [(tasks, bank bytes, {task: bytes}, export result)] for
    T = 1..n, one model growing a task at a time, exported after each
    (cached: growing further reuses the first exports)."""
    steps, state = [], {}

    def get(n):
        while len(steps) < n:
            t = len(steps) + 1
            if t == 1:
                state["model"] = build(ALL_TASKS[:1], family)
            else:
                state["model"] = rmtl_tf.add_task(state["model"],
                                                  ALL_TASKS[t - 1])
                # Not identity modulators: see conftest.
                randomize_task(state["model"], ALL_TASKS[t - 1], seed=t)
            model = state["model"]
            result = export_lib.export(model, export_dir)
            steps.append((list(model.tasks), _bytes(model.bank_variables()),
                          {k: _bytes(model.task_variables(k))
                           for k in model.tasks}, result))
        return steps[:n]
    return get


@pytest.fixture(scope="module")
def grow(tmp_path_factory):
    """The BIG model (sizes: one bank tells from two), grown on demand."""
    return _grower(str(tmp_path_factory.mktemp("incremental")), BIG)


@pytest.fixture(scope="module")
def versions(grow):
    return grow(DEFAULT_TASKS)


@pytest.fixture(scope="module")
def small_versions(tmp_path_factory):
    """A small model grown to all 5 tasks, exported after each: the
    bit-identity promise checked for T = 1..5 in the default run."""
    return _grower(str(tmp_path_factory.mktemp("incremental_small")),
                   SMALL)(len(ALL_TASKS))


def test_each_export_is_a_new_version(versions):
    for t, (tasks, _, _, result) in enumerate(versions, start=1):
        assert result["version"] == t
        assert result["tasks"] == tasks == list(ALL_TASKS[:t])
        assert result["saved_model"].endswith(os.path.join("rmtl", str(t)))


def test_metadata_lists_new_and_unchanged_tasks(versions):
    bank = None
    for t, (tasks, _, _, result) in enumerate(versions, start=1):
        metadata = export_metadata.read(result["metadata"])
        assert metadata == {**export_lib.read_saved_model_metadata(
            result["saved_model"]), "files": metadata["files"]}
        assert metadata["signatures"] == ["serving_default", *tasks]
        bank = bank or metadata["bank_fingerprint"]
        assert metadata["bank_fingerprint"] == bank
        previous = metadata["previous_version"]
        if t == 1:
            assert previous is None
            continue
        assert previous == {"version": t - 1, "same_bank": True,
                            "new_tasks": [tasks[-1]],
                            "unchanged_tasks": tasks[:-1],
                            "changed_tasks": [], "removed_tasks": []}


def test_old_tasks_are_bit_identical_in_new_versions(small_versions, image):
    """T = 1..5: every task of version t-1, in version t, the same bits,
    from the SavedModel (its own signature and serving_default) and the
    TFLite (its own signature and serving_default)."""
    _check_bit_identical(small_versions, image)


def _check_bit_identical(versions, image):
    saved = [tf.saved_model.load(r["saved_model"]) for *_, r in versions]
    lite = [Interpreter(model_path=r["tflite"]) for *_, r in versions]
    x = tf.constant(image)
    for t in range(1, len(versions)):
        for task in versions[t - 1][0]:
            before = saved[t - 1].signatures[task](image=x)[task].numpy()
            after = saved[t].signatures[task](image=x)[task].numpy()
            np.testing.assert_array_equal(after, before, err_msg=task)
            both = saved[t].signatures["serving_default"](image=x)[task]
            np.testing.assert_array_equal(both.numpy(), before)
            run = [i.get_signature_runner(task)(image=image)[task]
                   for i in (lite[t - 1], lite[t])]
            np.testing.assert_array_equal(run[1], run[0], err_msg=task)
            every = lite[t].get_signature_runner("serving_default")(
                image=image)[task]
            np.testing.assert_array_equal(every, run[0], err_msg=task)


def _check_sizes(steps):
    """size <= bank + T x per-task x 1.05, SavedModel and TFLite alike."""
    for tasks, bank, per_task, result in steps:
        budget = bank + PER_TASK_SLACK * sum(per_task.values())
        # A second bank would break the budget.
        assert bank > (PER_TASK_SLACK - 1) * sum(per_task.values())
        variables = _dir_bytes(os.path.join(result["saved_model"],
                                            "variables"))
        assert variables <= budget, (len(tasks), variables, budget)
        tflite = os.path.getsize(result["tflite"])
        assert tflite <= budget, (len(tasks), tflite, budget)


def test_files_hold_the_bank_once(versions):
    _check_sizes(versions)


@pytest.mark.slow
def test_files_hold_the_bank_once_for_1_to_5_tasks(grow, image):
    steps = grow(len(ALL_TASKS))
    _check_sizes(steps)
    test_metadata_lists_new_and_unchanged_tasks(steps)
    _check_bit_identical(steps, image)


def test_fingerprints_match_the_model(versions):
    tasks, _, _, result = versions[-1]
    metadata = export_metadata.read(result["metadata"])
    model = build(ALL_TASKS[:1], BIG)
    assert metadata["bank_fingerprint"] == fingerprint.bank_fingerprint(model)
    assert sorted(metadata["task_fingerprints"]) == sorted(tasks)


def test_models_config_lists_the_model(versions):
    *_, result = versions[-1]
    text = open(result["models_config"], encoding="utf-8").read()
    assert text.count("config {") == 1
    assert 'base_path: "/models/rmtl"' in text
