"""The task registry: every entry is sane and matches the paper's table."""

import dataclasses

import pytest

from rmtl_tf.layers.task_state import validate_task_name
from rmtl_tf.metrics import simple_metrics
from rmtl_tf.tasks import losses, registry

# The paper's tasks: (loss, loss weight, lower is better), from
# /work/shared/method.md's table.
PAPER = {
    "semseg": (losses.masked_sparse_cross_entropy, 1.0, False),
    "human_parts": (losses.masked_sparse_cross_entropy, 2.0, False),
    "saliency": (losses.binary_cross_entropy, 5.0, False),
    "normals": (losses.masked_l1, 10.0, True),
    "edge": (losses.balanced_binary_cross_entropy, 50.0, False),
    "depth": (losses.masked_l1, 1.0, True),
}
ACTIVATIONS = {"softmax", "sigmoid", "l2_normalize", "linear"}
LOWER_IS_BETTER = {"miou": False, "iou": False, "f1": False, "rmse": True,
                   "mean_angle_error": True}


def test_registry_has_the_paper_tasks():
    assert set(registry.TASKS) == set(PAPER)


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_every_entry_is_sane(name):
    spec = registry.TASKS[name]
    assert spec.name == name
    assert validate_task_name(name) == name
    assert spec.channels is None or (isinstance(spec.channels, int)
                                     and spec.channels > 0)
    assert spec.activation in ACTIVATIONS
    assert callable(spec.loss)
    loss, weight, lower = PAPER[name]
    assert spec.loss is loss
    assert spec.loss_weight == weight
    assert spec.lower_is_better is lower
    assert LOWER_IS_BETTER[spec.metric] is lower
    # Classification tasks predict classes; the others a fixed width.
    if spec.activation == "softmax":
        assert spec.metric == "miou"
    metric = simple_metrics.make_metric(name, {"semseg": 21})
    assert hasattr(metric, "update") and hasattr(metric, "result")


def test_fixed_widths():
    assert registry.TASKS["semseg"].channels is None
    assert registry.TASKS["human_parts"].channels == 7
    assert registry.TASKS["normals"].channels == 3
    for name in ("saliency", "edge", "depth"):
        assert registry.TASKS[name].channels == 1


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.TASKS["depth"].loss_weight = 2.0


def test_get_task_unknown_lists_the_options():
    assert registry.get_task("depth") is registry.TASKS["depth"]
    with pytest.raises(ValueError) as info:
        registry.get_task("optical_flow")
    message = str(info.value)
    assert "optical_flow" in message
    for name in registry.TASKS:
        assert name in message
    with pytest.raises(ValueError, match="lower-case"):
        registry.get_task("Semseg")


def test_parse_tasks():
    assert registry.parse_tasks("semseg, depth,normals") == (
        "semseg", "depth", "normals")
    assert registry.parse_tasks("edge,,") == ("edge",)
    assert registry.parse_tasks(("depth", "edge")) == ("depth", "edge")
    assert registry.parse_tasks(["depth", "edge"]) == ("depth", "edge")
    assert registry.parse_tasks("") == ()
    assert registry.parse_tasks(None) is None
    with pytest.raises(ValueError, match="Duplicate task 'depth'"):
        registry.parse_tasks("depth,semseg,depth")
    with pytest.raises(ValueError, match="sem"):
        registry.parse_tasks(["sem"])


def test_output_channels():
    with pytest.raises(ValueError, match="num_classes"):
        registry.output_channels("semseg")
    with pytest.raises(ValueError, match="num_classes"):
        registry.output_channels("semseg", {"human_parts": 7})
    assert registry.output_channels("semseg", {"semseg": 21}) == 21
    assert registry.output_channels("semseg", {"semseg": "41"}) == 41
    assert registry.output_channels("normals") == 3
    assert registry.output_channels("depth", {"semseg": 21}) == 1
    assert registry.output_channels("human_parts") == 7
    with pytest.raises(ValueError, match="Unknown task"):
        registry.output_channels("flow", {"flow": 2})
