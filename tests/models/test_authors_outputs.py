"""Our model against numbers the authors' own PyTorch code produced.

`fixtures/write_authors_outputs.py` ran their unchanged
`modules/deeplab_resnet.py` (commit and torch version in
`fixtures/authors_outputs.json`): ResNet-18 DeepLabv3+, RCM with NFF,
per-task parameters, NYUD semseg (41 classes) and depth, built as their
NYUD `*_RC_RI_NFF.yaml` configs build it, in eval mode, on a 209 x 224
image normalized as their NYUD loader does. It loaded a full-size state
dict whose every tensor is a formula of its name (`fixtures/authors_state`),
so no weights are committed: numpy rebuilds the same dict here, our public
import path (`rmtl_tf.assemble_checkpoints`) builds and fills our model
from it, and the whole network, from [0, 255] pixels (our model normalizes
inside) to each task's output at image resolution, must give their numbers.
No PyTorch needed.
"""

import json
import os
import sys

import numpy as np
import pytest

import rmtl_tf

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "fixtures")
sys.path.insert(0, FIXTURES)
import authors_state  # pylint: disable=wrong-import-position

# float32 both sides, summed in other orders (oneDNN against PyTorch's CPU
# kernels) through ~25 layers: the largest difference may be this fraction
# of the output's largest magnitude (observed: 1.8e-6 semseg, 3.1e-6 depth;
# a modulator imported untransposed gives 0.74, BatchNorm eps 1e-3 instead
# of their 1e-5 gives 8e-3).
RTOL = 1e-4


@pytest.fixture(scope="module")
def note():
    with open(authors_state.NOTE_FILE, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def theirs():
    with np.load(authors_state.OUTPUTS_FILE, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def state_dict():
    return authors_state.state_dict()


@pytest.fixture(scope="module")
def model(state_dict):
    return rmtl_tf.assemble_checkpoints(
        [state_dict], image_size=authors_state.IMAGE_SIZE)


def test_inputs_are_the_ones_their_code_ran(state_dict, note):
    """The numpy formulas rebuild, bit for bit, the state dict and image the
    generator fed their model (else the comparison below means nothing)."""
    assert len(state_dict) == note["state_dict"]["tensors"] == 403
    assert authors_state.fingerprint(state_dict) == (
        note["state_dict"]["fingerprint_crc32"])
    assert authors_state.fingerprint({"image": authors_state.image()}) == (
        note["input"]["image_crc32"])
    assert note["input"]["network_input_shape"] == [
        1, 3, *authors_state.IMAGE_SIZE]
    assert note["constructor_kwargs"]["tasks"] == list(authors_state.TASKS)
    assert note["constructor_kwargs"]["NFF"] is True
    assert note["constructor_kwargs"]["common_mt_params"] is False
    assert len(note["commit"]) == 40


def test_model_is_theirs(model):
    """What `assemble_checkpoints` reads off their tensors (and the ASPP
    rates, which are not in the weights: theirs at output stride 16)."""
    assert model.tasks == list(authors_state.TASKS)
    assert model.backbone == "resnet18" and model.width_multiplier == 1.0
    assert model.nff and model.num_classes == {"semseg": 41}
    assert model.aspp_rates == (6, 12, 18)
    assert (model.head_channels, model.low_level_channels) == (256, 48)


def test_outputs_equal_their_code(model, theirs, note):
    """Every task's output equals that of their code, at every stored pixel
    (every 7th row and column and the last ones, all channels)."""
    rows, cols = authors_state.pixels()
    np.testing.assert_array_equal(theirs["rows"], rows)
    np.testing.assert_array_equal(theirs["cols"], cols)
    image = authors_state.image()[None].astype(np.float32)  # [0, 255] RGB.
    outputs = model(image, training=False)
    for task in authors_state.TASKS:
        ours = np.asarray(outputs[task])  # NHWC at image resolution.
        assert list(np.transpose(ours, (0, 3, 1, 2)).shape) == (
            note["outputs"]["full_shapes"][task])
        ours = np.transpose(ours[:, rows][:, :, cols], (0, 3, 1, 2))
        expected = theirs[task]
        assert ours.shape == expected.shape, task
        scale = float(np.abs(expected).max())
        error = float(np.abs(ours - expected).max())
        assert scale > 1.0, task  # Not a degenerate (all-zero) reference.
        assert error <= RTOL * scale, (
            f"{task}: largest difference {error:.3g} against their code, "
            f"{error / scale:.3g} of the largest output {scale:.3g} "
            f"(allowed {RTOL:g})")
