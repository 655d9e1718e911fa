"""Tests of pretrained weight import: the authors' RCM checkpoints and
torchvision ResNets into our model, per-task checkpoints assembled into one.

The reference is independent of our model: a numpy forward of the authors'
RCM model that reads their tensor names directly (and, when PyTorch is
installed, a PyTorch model built like theirs that loads the same dict with
`strict=True`). State dicts are random arrays with the authors' names at
tiny widths (ResNet-18 x1/8, 16-channel head).
"""

import os
import re

import keras
import numpy as np
import pytest

import rmtl_tf
from rmtl_tf.models import bank, checkpoint_assembly, torch_state

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "fixtures")
IMAGE_SIZE = (64, 80)
# ASPP rates that reach past the centre of the 4x5 layer4 map.
TINY = {"backbone": "resnet18", "width_multiplier": 0.125,
        "head_channels": 16, "low_level_channels": 8,
        "num_classes": {"semseg": 5}, "aspp_rates": (1, 2, 3)}
TASKS = ["semseg", "normals"]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


# -- random state dicts in the authors' naming -------------------------------

def _random_state_dict(names_and_shapes, seed):
    """Random tensors with sane scales, keyed like the authors' model."""
    rng = np.random.default_rng(seed)
    state_dict = {}
    for name, shape in names_and_shapes.items():
        if name.endswith("num_batches_tracked"):
            value = np.array(100, np.int64)
        elif ".Wt." in name and name.endswith(("weight", "weight_v")):
            value = (np.eye(shape[0])[:, :, None, None]
                     + 0.3 * rng.standard_normal(shape) / shape[0]**0.5)
        elif name.endswith("weight_g"):
            value = rng.uniform(0.7, 1.3, shape)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif len(shape) == 4:  # Conv kernels, He-scaled.
            value = rng.standard_normal(shape) * (
                2.0 / np.prod(shape[1:]))**0.5
        elif name.endswith("weight") and ("bnorm" in name or len(shape) == 1):
            value = rng.uniform(0.5, 1.5, shape)  # BatchNorm gamma.
        else:  # Biases, beta, running means.
            value = 0.1 * rng.standard_normal(shape)
        state_dict[name] = value.astype(value.dtype if value.dtype == np.int64
                                        else np.float32)
    return state_dict


def _authors_names(tasks, nff=True, **kwargs):
    keras.utils.set_random_seed(0)
    config = {**TINY, **kwargs}
    model = rmtl_tf.build_model(config.pop("backbone"), tasks, nff=nff,
                                image_size=IMAGE_SIZE, **config)
    return {n: v.shape for n, v in rmtl_tf.export_state_dict(model).items()}


@pytest.fixture(scope="module")
def state_dict():
    """The authors' RCM+NFF model at tiny widths, semseg and normals."""
    return _random_state_dict(_authors_names(TASKS), seed=1)


@pytest.fixture(scope="module")
def model(state_dict):
    return rmtl_tf.assemble_checkpoints(
        [state_dict], image_size=IMAGE_SIZE, aspp_rates=TINY["aspp_rates"])


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).uniform(
        0, 255, (2, *IMAGE_SIZE, 3)).astype(np.float32)


def _outputs(model, images):
    out = model(images, training=False)
    return {t: np.asarray(out[t]) for t in model.tasks}


# -- a numpy forward of the authors' model, from their names -----------------

def _conv(x, w, stride=1, padding=0, dilation=1, bias=None):
    """torch.nn.functional.conv2d: x (N, C, H, W), w (O, I, kh, kw)."""
    n, _, h, wd = x.shape
    out_c, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, out_c, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dilation:i * dilation + stride * (ho - 1) + 1:
                      stride, j * dilation:j * dilation + stride * (wo - 1)
                      + 1:stride]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y if bias is None else y + bias[None, :, None, None]


def _bn(x, sd, prefix):
    scale = sd[f"{prefix}.weight"] / np.sqrt(sd[f"{prefix}.running_var"]
                                             + 1e-5)
    shift = sd[f"{prefix}.bias"] - sd[f"{prefix}.running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def _relu(x):
    return np.maximum(x, 0)


def _upsample(x, size):
    """F.interpolate(mode="bilinear", align_corners=False)."""
    for axis, out in ((2, size[0]), (3, size[1])):
        size_in = x.shape[axis]
        src = np.maximum((np.arange(out) + 0.5) * size_in / out - 0.5, 0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, size_in - 1)
        lam = src - lo
        shape = [1, 1, 1, 1]
        shape[axis] = out
        lam = lam.reshape(shape)
        x = (np.take(x, lo, axis=axis) * (1 - lam)
             + np.take(x, hi, axis=axis) * lam)
    return x


def _rcm_conv(x, sd, path, task, **conv):
    x = _conv(x, sd[f"{path}.Ws.weight"].astype(np.float64), **conv)
    prefix = f"{path}.Wt.{task}"
    if f"{prefix}.weight" in sd:
        wt = sd[f"{prefix}.weight"]
    else:  # weight_norm, dim=0: norm over all but the output axis.
        v = sd[f"{prefix}.weight_v"].astype(np.float64)
        wt = sd[f"{prefix}.weight_g"] * v / np.sqrt(
            np.sum(v**2, axis=(1, 2, 3), keepdims=True))
    return _conv(x, wt)


def reference_forward(sd, image, task, aspp_rates, layer4_first_dilation=2):
    """The authors' `ResNet.forward` for `task` (output stride 16, eval).

    `image`: NHWC RGB in [0, 255]; returns NHWC. Strides (2, 2, 2, 2, 1) and
    dilations (1, 2) as their `ResNet`; their `_make_layer` dilates every
    conv of layer4 (`layer4_first_dilation=2`).
    """
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    x = np.transpose((image / 255.0 - IMAGENET_MEAN) / IMAGENET_STD,
                     (0, 3, 1, 2))
    h, w = x.shape[2:]
    x = _relu(_bn(_rcm_conv(x, sd, "conv1", task, stride=2, padding=3), sd,
                  f"bn1.bnorm.{task}"))
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    x = np.max([x[:, :, i:i + 2 * ((x.shape[2] - 3) // 2) + 1:2,
                  j:j + 2 * ((x.shape[3] - 3) // 2) + 1:2]
                for i in range(3) for j in range(3)], axis=0)
    for stage, stride, dilation in ((1, 1, 1), (2, 2, 1), (3, 2, 1),
                                    (4, 1, 2)):
        block = 0
        while f"layer{stage}.{block}.conv1.Ws.weight" in sd:
            p = f"layer{stage}.{block}"
            first = (layer4_first_dilation if stage == 4 and block == 0
                     else dilation)
            s = stride if block == 0 else 1
            out = _relu(_bn(_rcm_conv(x, sd, f"{p}.conv1", task, stride=s,
                                      padding=first, dilation=first),
                            sd, f"{p}.bn1.bnorm.{task}"))
            out = _bn(_rcm_conv(out, sd, f"{p}.conv2", task,
                                padding=dilation, dilation=dilation),
                      sd, f"{p}.bn2.bnorm.{task}")
            if f"{p}.downsample.conv.conv.{task}.weight" in sd:
                x = _bn(_conv(x, sd[f"{p}.downsample.conv.conv.{task}.weight"],
                              stride=s), sd,
                        f"{p}.downsample.bnorm.bnorm.{task}")
            x = _relu(out + x)
            block += 1
        if stage == 1:
            low = x
    aspp = f"layer5.{task}"
    branches = [_relu(_bn(_conv(x, sd[f"{aspp}.conv2d_list.0.0.weight"]), sd,
                          f"{aspp}.conv2d_list.0.1"))]
    for i, rate in enumerate(aspp_rates, start=1):
        branches.append(_relu(_bn(_conv(
            x, sd[f"{aspp}.conv2d_list.{i}.0.weight"], padding=rate,
            dilation=rate), sd, f"{aspp}.conv2d_list.{i}.1")))
    pool = len(aspp_rates) + 1
    pooled = _relu(_bn(_conv(x.mean(axis=(2, 3), keepdims=True),
                             sd[f"{aspp}.conv2d_list.{pool}.1.weight"]), sd,
                       f"{aspp}.conv2d_list.{pool}.2"))
    branches.append(_upsample(pooled, x.shape[2:]))
    x = _relu(_bn(_conv(np.concatenate(branches, axis=1),
                        sd[f"{aspp}.conv2d_final.0.weight"]), sd,
                  f"{aspp}.conv2d_final.1"))
    x = _upsample(x, low.shape[2:])
    low = _relu(_bn(_conv(low, sd[f"low_level_reduce.{task}.0.weight"]), sd,
                    f"low_level_reduce.{task}.1"))
    x = np.concatenate([x, low], axis=1)
    for conv, norm in ((0, 1), (3, 4)):
        x = _relu(_bn(_conv(x, sd[f"concat.{task}.{conv}.weight"],
                            padding=1), sd, f"concat.{task}.{norm}"))
    x = _conv(x, sd[f"predict.{task}.weight"],
              bias=sd[f"predict.{task}.bias"])
    x = _upsample(x, (h, w))
    if task == "normals":
        x = x / np.maximum(np.sqrt(np.sum(x**2, axis=1, keepdims=True)),
                           1e-12)
    return np.transpose(x, (0, 2, 3, 1))


def _assert_close(actual, expected, rtol=1e-4):
    scale = np.abs(expected).max()
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rtol * scale, (
        np.abs(actual - expected).max(), scale)


def _first_dilation(model):
    return model.get_layer("layer4_0_conv1").dilation_rate[0]


# -- names -------------------------------------------------------------------

def test_names_and_shapes_are_the_authors():
    """resnet18, NYUD semseg (41 classes) + depth, NFF: every tensor name
    and shape of the authors' model, nothing more."""
    expected = {}
    with open(os.path.join(FIXTURES,
                           "rcm_resnet18_nyud_semseg_depth_keys.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, shape = line.split(" ", 1)
            expected[name] = tuple(int(s) for s in re.findall(r"\d+", shape))
    keras.utils.set_random_seed(0)
    model = rmtl_tf.build_model("resnet18", ["semseg", "depth"],
                                num_classes={"semseg": 41})
    names = {n: tuple(v.shape)
             for n, v in rmtl_tf.export_state_dict(model).items()}
    assert sorted(set(names) - set(expected)) == []
    assert sorted(set(expected) - set(names)) == []
    assert names == expected


def test_config_from_state_dict(state_dict):
    config = checkpoint_assembly.config_from_state_dict(state_dict)
    assert config == {
        "backbone": "resnet18", "tasks": TASKS,
        "num_classes": {"semseg": 5}, "width_multiplier": 0.125,
        "head_channels": 16, "low_level_channels": 8, "nff": True}


# -- the forward -------------------------------------------------------------

def test_outputs_equal_the_authors_forward(model, state_dict, images):
    """Every task's output equals the reference forward of the same weights
    (layer4's first conv dilated as our backbone does; see the next test)."""
    outputs = _outputs(model, images)
    for task in TASKS:
        expected = reference_forward(state_dict, images, task,
                                     TINY["aspp_rates"],
                                     layer4_first_dilation=_first_dilation(
                                         model))
        _assert_close(outputs[task], expected)


def test_layer4_is_dilated_as_the_authors(model):
    # The authors' _make_layer gives every conv of layer4 dilation 2
    # (BasicBlock(..., dilation=2) for block 0 too).
    assert _first_dilation(model) == 2


def test_nff_and_plain_modulators_convert(model, state_dict, images):
    """An NFF checkpoint into a plain-modulator model, and back: the same
    function; export of the imported model gives back the weights."""
    plain = rmtl_tf.assemble_checkpoints([state_dict], nff=False,
                                         image_size=IMAGE_SIZE,
                                         aspp_rates=TINY["aspp_rates"])
    expected = _outputs(model, images)
    for task, out in _outputs(plain, images).items():
        _assert_close(out, expected[task], rtol=1e-5)
    plain_dict = rmtl_tf.export_state_dict(plain)
    assert "conv1.Wt.semseg.weight" in plain_dict
    rmtl_tf.import_state_dict(model, plain_dict)  # Plain into NFF.
    for task, out in _outputs(model, images).items():
        _assert_close(out, expected[task], rtol=1e-5)
    rmtl_tf.import_state_dict(model, state_dict)
    exported = rmtl_tf.export_state_dict(model)
    assert set(exported) == set(state_dict)
    for name, value in state_dict.items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(exported[name], value,
                                          err_msg=name)


# -- errors ------------------------------------------------------------------

def test_errors_list_unmapped_unset_and_mismatched(model, state_dict):
    broken = dict(state_dict)
    broken["layer9.0.conv1.Ws.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    del broken["layer2.0.bn1.bnorm.normals.running_var"]
    broken["predict.semseg.bias"] = np.zeros((3,), np.float32)
    before = model.get_layer("conv1").bank.numpy()
    broken["conv1.Ws.weight"] = broken["conv1.Ws.weight"] + 1.0
    with pytest.raises(ValueError) as info:
        rmtl_tf.import_state_dict(model, broken)
    message = str(info.value)
    assert "map to no variable of the model: layer9.0.conv1.Ws.weight" \
        in message
    assert "unset: layer2.0.bn1.bnorm.normals.running_var" in message
    assert "predict.semseg.bias (3,) -> head_predict_semseg/bias (5,)" \
        in message
    # Nothing was assigned.
    np.testing.assert_array_equal(model.get_layer("conv1").bank.numpy(),
                                  before)


def test_tasks_must_exist(model, state_dict):
    renamed = {n.replace("normals", "depth"): v for n, v in state_dict.items()}
    with pytest.raises(ValueError, match=r"no tasks \['depth'\]"):
        rmtl_tf.import_state_dict(model, renamed)
    with pytest.raises(ValueError, match="no weights of tasks"):
        rmtl_tf.import_state_dict(model, state_dict, tasks=["edge"])
    # One task of a two-task checkpoint: the other task's tensors are skipped.
    assert rmtl_tf.import_state_dict(model, state_dict,
                                     tasks=["normals"]) == ["normals"]


# -- torchvision -------------------------------------------------------------

def _torchvision_dict(state_dict):
    """A torchvision ResNet's names: the banks as convs, semseg's BN."""
    tv = {"fc.weight": np.zeros((10, 64), np.float32),
          "fc.bias": np.zeros((10,), np.float32)}
    for name, value in state_dict.items():
        if name.endswith(".Ws.weight"):
            tv[name.replace(".Ws.weight", ".weight")] = value
        elif ".semseg." in name and not name.startswith(
                ("layer5", "low_level", "concat", "predict")) \
                and ".Wt." not in name:
            name = name.replace(".downsample.conv.conv.semseg.",
                                ".downsample.0.")
            name = name.replace(".downsample.bnorm.bnorm.semseg.",
                                ".downsample.1.")
            tv[name.replace(".bnorm.semseg.", ".")] = value
    return tv


def test_torchvision_weights(model, state_dict, tmp_path):
    tv = _torchvision_dict(state_dict)
    assert "layer2.0.downsample.1.running_var" in tv
    keras.utils.set_random_seed(3)
    fresh = rmtl_tf.build_model(**{**TINY, "tasks": TASKS},
                                image_size=IMAGE_SIZE)
    assert rmtl_tf.import_state_dict(fresh, tv) == TASKS
    for name in ("conv1", "layer3_0_conv2", "layer4_1_conv1"):
        np.testing.assert_array_equal(fresh.get_layer(name).bank.numpy(),
                                      model.get_layer(name).bank.numpy())
    for task in TASKS:  # Every task's copy from the one pretrained BN.
        for name in ("bn1", "layer2_0_downsample_bn", "layer4_1_bn2"):
            np.testing.assert_array_equal(
                fresh.get_layer(f"{name}_{task}").moving_variance.numpy(),
                model.get_layer(f"{name}_semseg").moving_variance.numpy())
        np.testing.assert_array_equal(
            fresh.get_layer(f"layer3_0_downsample_conv_{task}").kernel,
            model.get_layer("layer3_0_downsample_conv_semseg").kernel)

    # The bank loader of train.py: --bank=torchvision:PATH.
    path = str(tmp_path / "resnet18.npz")
    np.savez(path, **tv)
    weights = bank.load_bank_weights(f"torchvision:{path}")
    assert weights["layer2_0_downsample_bn/moving_variance"].shape == (16,)
    assert "fc/kernel" not in weights
    np.testing.assert_array_equal(
        weights["conv1/kernel"], model.get_layer("conv1").bank.numpy())

    del tv["layer1.0.bn1.bias"]
    tv["layer1.0.conv3.weight"] = tv["layer1.0.conv2.weight"]
    with pytest.raises(ValueError) as info:
        rmtl_tf.import_state_dict(fresh, tv)
    assert "layer1_0_conv3/kernel" in str(info.value)
    assert "unset: layer1_0_bn1/beta" in str(info.value)
    tv["layer1.0.relu.weight"] = tv["fc.bias"]
    bad = _save(tmp_path / "bad.npz", tv)
    with pytest.raises(ValueError, match=r"layer1\.0\.relu\.weight"):
        bank.load_bank_weights(f"torchvision:{bad}")


def _save(path, arrays):
    np.savez(str(path), **arrays)
    return str(path)


# -- assembling per-task checkpoints -----------------------------------------

def _task_dict(state_dict, task):
    return {n: v for n, v in state_dict.items()
            if torch_state.checkpoint_tasks({n: v}) in ([], [task])}


def test_assemble_rejects_other_banks_and_twice_a_task(state_dict):
    semseg = _task_dict(state_dict, "semseg")
    normals = dict(_task_dict(state_dict, "normals"))
    normals["layer3.1.conv2.Ws.weight"] = (
        normals["layer3.1.conv2.Ws.weight"] * 1.001)
    with pytest.raises(ValueError, match=(
            r"checkpoint #0 and checkpoint #1 were trained on different "
            r"banks: they differ first at layer 'layer3\.1\.conv2'")):
        rmtl_tf.assemble_checkpoints([semseg, normals])
    with pytest.raises(ValueError, match="'semseg' is in both"):
        rmtl_tf.assemble_checkpoints([semseg, semseg])


def test_assemble_two_single_task_checkpoints_and_export(
        model, state_dict, images, tmp_path):
    """Two one-task checkpoints, one model, one SavedModel: each signature
    gives its checkpoint's outputs."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rmtl_tf.export import export_lib  # pylint: disable=import-outside-toplevel
    semseg = _task_dict(state_dict, "semseg")
    normals = _task_dict(state_dict, "normals")
    path = _save(tmp_path / "normals.npz", normals)
    assembled = rmtl_tf.assemble_checkpoints(
        [semseg, path], image_size=IMAGE_SIZE,
        aspp_rates=TINY["aspp_rates"])
    assert assembled.tasks == TASKS
    expected = _outputs(model, images)
    got = _outputs(assembled, images)
    for task in TASKS:
        np.testing.assert_array_equal(got[task], expected[task])

    result = export_lib.export(assembled, str(tmp_path / "export"),
                               tflite=False)
    loaded = tf.saved_model.load(result["saved_model"])
    for task in TASKS:
        served = loaded.signatures[task](image=tf.constant(images))[task]
        np.testing.assert_allclose(
            served.numpy(), np.asarray(rmtl_tf.predictions(task,
                                                           expected[task])),
            # The export traces the factorized graph (bank stored once),
            # Keras runs the fused one: the same sums in another order.
            atol=1e-4)


# -- PyTorch (optional) ------------------------------------------------------

def test_pth_files_and_convert_tool(state_dict, tmp_path):
    torch = pytest.importorskip("torch")
    from rmtl_tf.tools import convert_pth  # pylint: disable=import-outside-toplevel
    pth = str(tmp_path / "model_best.pth")
    torch.save({"state_dict": {f"module.{n}": torch.from_numpy(v)
                               for n, v in state_dict.items()},
                "iteration": 7}, pth)
    assert convert_pth.convert(pth, str(tmp_path / "model.npz")) == len(
        state_dict)
    with np.load(str(tmp_path / "model.npz")) as data:
        assert sorted(data.files) == sorted(state_dict)
        np.testing.assert_array_equal(data["conv1.Ws.weight"],
                                      state_dict["conv1.Ws.weight"])
    loaded = torch_state.load_state_dict(pth)
    assert sorted(loaded) == sorted(state_dict)


def _torch_model(torch, tasks, state_dict, aspp_rates, layer4_first_dilation):
    """A PyTorch model built as the authors' (modules/deeplab_resnet.py,
    layers.py, pyramid_pooling.py), per-task parameters, NFF if the names
    say so; its widths read off `state_dict`."""
    nn = torch.nn
    nff = any(n.endswith("weight_g") for n in state_dict)

    def shape(name):
        return state_dict[name].shape

    def weight_norm(module):
        if hasattr(nn.utils, "weight_norm"):  # weight_g / weight_v.
            return nn.utils.weight_norm(module, dim=0)
        return nn.utils.parametrizations.weight_norm(module, dim=0)

    class RCMConv2d(nn.Module):
        def __init__(self, cin, cout, k, stride=1, padding=0, dilation=1):
            super().__init__()
            self.Ws = nn.Conv2d(cin, cout, k, stride, padding, dilation,
                                bias=False)
            self.Wt = nn.ModuleDict({t: (weight_norm if nff else (
                lambda m: m))(nn.Conv2d(cout, cout, 1, bias=False))
                                     for t in tasks})

        def forward(self, x, task):
            return self.Wt[task](self.Ws(x))

    class MTBatchNorm2d(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.bnorm = nn.ModuleDict({t: nn.BatchNorm2d(c) for t in tasks})

        def forward(self, x, task):
            return self.bnorm[task](x)

    class MTConv2d(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv = nn.ModuleDict({t: nn.Conv2d(cin, cout, 1, stride,
                                                    bias=False)
                                       for t in tasks})

    class Downsample(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv = MTConv2d(cin, cout, stride)
            self.bnorm = MTBatchNorm2d(cout)

        def forward(self, x, task):
            return self.bnorm(self.conv.conv[task](x), task)

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride, dilation, first, downsample):
            super().__init__()
            self.conv1 = RCMConv2d(cin, cout, 3, stride, first, first)
            self.bn1 = MTBatchNorm2d(cout)
            self.conv2 = RCMConv2d(cout, cout, 3, 1, dilation, dilation)
            self.bn2 = MTBatchNorm2d(cout)
            self.downsample = downsample

        def forward(self, x, task):
            out = torch.relu(self.bn1(self.conv1(x, task), task))
            out = self.bn2(self.conv2(out, task), task)
            if self.downsample is not None:
                x = self.downsample(x, task)
            return torch.relu(out + x)

    def conv_bn_relu(cin, cout, k=1, dilation=1):
        return [nn.Conv2d(cin, cout, k, padding=dilation * (k // 2),
                          dilation=dilation, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU()]

    class ASPP(nn.Module):
        def __init__(self, cin, depth):
            super().__init__()
            self.conv2d_list = nn.ModuleList(
                [nn.Sequential(*conv_bn_relu(cin, depth))]
                + [nn.Sequential(*conv_bn_relu(cin, depth, 3, rate))
                   for rate in aspp_rates]
                + [nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                 *conv_bn_relu(cin, depth))])
            self.conv2d_final = nn.Sequential(*conv_bn_relu(
                depth * (len(aspp_rates) + 2), depth))

        def forward(self, x):
            interm = [m(x) for m in self.conv2d_list]
            interm[-1] = nn.functional.interpolate(
                interm[-1], size=x.shape[2:], mode="bilinear",
                align_corners=False)
            return self.conv2d_final(torch.cat(interm, 1))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            width = shape("conv1.Ws.weight")[0]
            self.conv1 = RCMConv2d(3, width, 7, 2, 3)
            self.bn1 = MTBatchNorm2d(width)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = width
            for stage, stride, dilation in ((1, 1, 1), (2, 2, 1), (3, 2, 1),
                                            (4, 1, 2)):
                blocks = []
                while f"layer{stage}.{len(blocks)}.conv1.Ws.weight" \
                        in state_dict:
                    cout = shape(f"layer{stage}.0.conv1.Ws.weight")[0]
                    first = dilation
                    if stage == 4 and not blocks:
                        first = layer4_first_dilation
                    down = None
                    if not blocks and (stride != 1 or cin != cout
                                       or dilation == 2):
                        down = Downsample(cin, cout, stride)
                    blocks.append(BasicBlock(cin, cout,
                                             stride if not blocks else 1,
                                             dilation, first, down))
                    cin = cout
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            t0 = tasks[0]
            depth = shape(f"layer5.{t0}.conv2d_final.0.weight")[0]
            low = shape(f"low_level_reduce.{t0}.0.weight")
            self.layer5 = nn.ModuleDict({t: ASPP(cin, depth) for t in tasks})
            self.low_level_reduce = nn.ModuleDict({t: nn.Sequential(
                *conv_bn_relu(low[1], low[0])) for t in tasks})
            self.concat = nn.ModuleDict({t: nn.Sequential(
                *conv_bn_relu(depth + low[0], depth, 3),
                *conv_bn_relu(depth, depth, 3)) for t in tasks})
            self.predict = nn.ModuleDict({t: nn.Conv2d(
                depth, shape(f"predict.{t}.weight")[0], 1) for t in tasks})

        def forward(self, x, task):
            h, w = x.shape[2:]
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x, task), task)))
            for stage in range(1, 5):
                for block in getattr(self, f"layer{stage}"):
                    x = block(x, task)
                if stage == 1:
                    x_low = x
            x = self.layer5[task](x)
            x = nn.functional.interpolate(x, size=x_low.shape[2:],
                                          mode="bilinear",
                                          align_corners=False)
            x = torch.cat([x, self.low_level_reduce[task](x_low)], 1)
            pred = self.predict[task](self.concat[task](x))
            out = nn.functional.interpolate(pred, size=(h, w),
                                            mode="bilinear",
                                            align_corners=False)
            if task == "normals":
                out = nn.functional.normalize(out, p=2, dim=1)
            return out

    def torch_name(name):
        if hasattr(nn.utils, "weight_norm"):
            return name
        return name.replace(".weight_g", ".parametrizations.weight.original0"
                            ).replace(".weight_v",
                                      ".parametrizations.weight.original1")

    net = ResNet()
    net.load_state_dict({torch_name(n): torch.from_numpy(np.asarray(v))
                         for n, v in state_dict.items()}, strict=True)
    return net.eval()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch weight_norm.
def test_torch_model_of_the_authors(model, state_dict, images):
    """The same dict loads with `strict=True` into a PyTorch model built like
    the authors'; its outputs equal ours, and the numpy reference's."""
    torch = pytest.importorskip("torch")
    normalized = torch.from_numpy(np.transpose(
        (images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD,
        (0, 3, 1, 2)).astype(np.float32))
    outputs = _outputs(model, images)
    for dilation in sorted({_first_dilation(model), 2}):
        net = _torch_model(torch, TASKS, state_dict, TINY["aspp_rates"],
                           dilation)
        for task in TASKS:
            with torch.no_grad():
                theirs = np.transpose(net(normalized, task).numpy(),
                                      (0, 2, 3, 1))
            _assert_close(theirs, reference_forward(
                state_dict, images, task, TINY["aspp_rates"], dilation))
            if dilation == _first_dilation(model):
                _assert_close(outputs[task], theirs)
