"""The paper's variants: parameter counts against closed forms, and which
variables each variant trains."""

import keras
import numpy as np
import pytest

from rmtl_tf import build_model
from rmtl_tf.data import synthetic_dataset
from rmtl_tf.models import parameter_counts, variants
from rmtl_tf.tasks import registry

H, L, C = 8, 4, 6  # Head width, low-level width, semseg classes
# (the synthetic scenes' 6 classes).
# resnet_tiny, written out by hand: (k, c_in, c_out) of every 3x3/7x7 conv,
# and (c_in, c_out) of every 1x1 shortcut conv.
CONVS = [(7, 3, 8), (3, 8, 8), (3, 8, 8), (3, 8, 16), (3, 16, 16),
         (3, 16, 16), (3, 16, 16), (3, 16, 32), (3, 32, 32)]
SHORTCUTS = [(8, 16), (16, 16), (16, 32)]
BANK = sum(k * k * i * o for k, i, o in CONVS)
BACKBONE_BN = 4 * (sum(o for _, _, o in CONVS) + sum(o for _, o in SHORTCUTS))
SHORTCUT = sum(i * o for i, o in SHORTCUTS)


def head(channels, c5=32, c2=8):
    aspp = (c5 * H + 3 * 9 * c5 * H + c5 * H + 5 * H * H) + 6 * 4 * H
    low = c2 * L + 4 * L
    decoder = 9 * (H + L) * H + 9 * H * H + 2 * 4 * H
    return aspp + low + decoder + H * channels + channels


def own(variant, channels):
    """Closed-form parameters owned by one task of `variant`."""
    per_layer = {
        "rc": sum(o * o for _, _, o in CONVS),
        "rc_nff": sum(o * o + o for _, _, o in CONVS),
        "ra_series": sum(o * o + 4 * o for _, _, o in CONVS),
        "ra_parallel": sum(i * o for _, i, o in CONVS),
        "conv": BANK,
    }
    if variant == "shared":
        return head(channels)
    return per_layer[variant] + BACKBONE_BN + SHORTCUT + head(channels)


def _model(variant, tasks=("semseg", "depth")):
    spec = variants.get_variant(variant)
    return build_model("resnet_tiny", list(tasks), num_classes={"semseg": C},
                       head_channels=H, low_level_channels=L,
                       image_size=(32, 32), architecture=spec.architecture,
                       nff=spec.nff)


@pytest.mark.parametrize("variant", ["rc", "rc_nff", "ra_series",
                                     "ra_parallel", "conv", "shared"])
def test_parameter_counts_match_closed_forms(variant):
    summary = parameter_counts.parameter_summary(_model(variant))
    assert summary["per_task"] == {"semseg": own(variant, C),
                                   "depth": own(variant, 1)}
    frozen = BANK if variant in ("rc", "rc_nff", "ra_series",
                                 "ra_parallel") else 0
    assert summary["bank"] == frozen
    shared = BANK + BACKBONE_BN + SHORTCUT if variant == "shared" else 0
    assert summary["shared_trainable"] == shared
    assert summary["total"] == frozen + shared + own(variant, C) + own(
        variant, 1)


def test_rcm_adds_a_fraction_of_a_network_per_task():
    single = parameter_counts.parameter_summary(
        _model("conv", ["semseg"]))["total"]
    rc = parameter_counts.parameter_summary(_model("rc_nff", ["semseg"]))
    assert rc["per_task"]["semseg"] < single


@pytest.mark.parametrize("variant", list(variants.VARIANTS))
def test_one_training_step_trains_exactly_what_the_variant_says(variant):
    model = _model(variant)
    model.set_trainable_tasks(["semseg"])
    trainable = {id(v) for v in model.trainable_variables}
    semseg = {id(v) for v in model.task_variables("semseg")}
    depth = {id(v) for v in model.task_variables("depth")}
    bank = {id(v) for v in model.bank_variables()}
    shared = {id(v) for v in model.shared_variables()}
    assert not trainable & bank and not trainable & depth
    if variant == "shared":
        # The shared encoder trains (its BN statistics are not trainable).
        assert {id(v) for v in model.shared_variables()
                if v.trainable} <= trainable
        assert trainable & shared
    else:
        assert not shared
        assert trainable <= semseg
    task_model = model.task_model(["semseg"])
    task_model.compile(optimizer=keras.optimizers.SGD(0.1),
                       loss=registry.get_task("semseg").loss,
                       jit_compile=False)
    before = {id(v): np.array(v) for v in model.weights}
    # One step on two synthetic scenes.
    scenes = synthetic_dataset.synthetic_arrays("train", 2, (32, 32))
    task_model.fit(scenes["image"].astype("float32"),
                   {"semseg": scenes["semseg"].astype("int32")}, epochs=1,
                   verbose=0)
    changed = {id(v) for v in model.weights
               if not np.array_equal(before[id(v)], np.array(v))}
    assert changed, "a training step changed nothing"
    assert not changed & bank and not changed & depth
    if variant == "shared":
        assert changed & shared
    else:
        assert changed <= semseg


def test_unknown_variant():
    with pytest.raises(ValueError, match="Unknown variant 'rc_xx'"):
        variants.get_variant("rc_xx")


def test_unknown_architecture():
    with pytest.raises(ValueError, match="Unknown architecture 'deep'"):
        build_model("resnet_tiny", ["depth"], architecture="deep")
