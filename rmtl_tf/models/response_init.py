"""RI, response initialization (Kanakis et al., Sec. 3.3).

For each reparameterized conv, the pretrained conv `W` is run on natural
images and its responses `y` (one `c_out` vector per pixel) are collected;
their PCA gives components `U` (`c_out x c_out`, columns ordered by
explained variance) and mean `m`. The bank becomes `Ws' = W U` (responses
expressed in the principal basis) and every task's modulator starts as
`U^T` (in the layer's `[in, out]` layout), so `Wt . Ws' = W U U^T = W`: the
network computes exactly the pretrained function at start. The mean offset
`m - U U^T m` (zero when every component is kept, as here) is folded into
the following BatchNorm's moving mean.

The PCA is taken of every bank conv: for the ResNets the stem and the 3x3
block convs; for MobileNetV2 the stem and every 1x1 project conv (the
depthwise convs are frozen and shared and the expand convs per task, with
no modulator to initialize; per pixel, a 1x1 conv's responses are `c_out`
vectors like any other's).

Statistics are streamed (sum and sum of outer products in float64), so
memory does not grow with the number of images.

`load_decompositions` imports the authors' precomputed PCA instead (their
`RI.zip`, made by their `decomp/` scripts on ImageNet images): one folder
per conv, named as torchvision's with `_` for `.` (`conv1`,
`layer1_0_conv1`, ...; our layer names), holding `components.npy` (`U`,
columns the components: their `pca.components_.T`) and `mean.npy`. Their
`create_decompositions` (`modules/deeplab_resnet.py`) builds `Ws' = U^T W`
and `Wt = U` (NFF: `g` the norm of each row) from them, as `apply` does.
It adds `m - U U^T m` to the following BatchNorm's running mean, where the
arithmetic calls for subtracting it (above); with every component kept, as
in their files, `U` is orthogonal and the term is zero up to rounding, so
the two agree.
"""

import io
import os
import time
import zipfile

import numpy as np

from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.models import bank as bank_lib
from rmtl_tf.models.layer_factory import task_layer_name
from rmtl_tf.models.mobilenet_backbone import batch_norm_name

PROGRESS_EVERY = 20  # Batches between progress lines.


def following_bn(conv_name):
    """The BatchNorm after backbone conv `conv_name` (`conv1` -> `bn1`;
    MobileNetV2's `Conv1` -> `bn_Conv1`, `block_1_expand` ->
    `block_1_expand_BN`)."""
    if conv_name == "Conv1" or conv_name.endswith(("_expand", "_project")):
        return batch_norm_name(conv_name)
    head, _, tail = conv_name.rpartition("conv")
    return f"{head}bn{tail}"


class ResponseStatistics:
    """Streaming mean and covariance of `c`-dimensional responses."""

    def __init__(self, channels):
        self.count = 0
        self.total = np.zeros(channels, np.float64)
        self.outer = np.zeros((channels, channels), np.float64)

    def update(self, responses):
        flat = np.asarray(responses, np.float64).reshape(
            -1, self.total.shape[0])
        self.count += flat.shape[0]
        self.total += flat.sum(0)
        self.outer += flat.T @ flat

    def pca(self):
        """(components U with columns by decreasing variance, variances,
        mean)."""
        if not self.count:
            raise ValueError("No responses were collected.")
        mean = self.total / self.count
        covariance = self.outer / self.count - np.outer(mean, mean)
        variances, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
        order = np.argsort(variances)[::-1]
        return vectors[:, order], variances[order], mean


def compute(weights, images, backbone, width_multiplier, log=print):
    """PCA of every backbone conv's responses on `images`.

    Args:
        weights: pretrained weights dict (see `rmtl_tf.models.bank`).
        images: an iterable of float32 RGB batches in [0, 255].
        backbone, width_multiplier: the architecture of `weights`.

    Returns:
        dict `"<conv>/components"`, `"<conv>/variances"`, `"<conv>/mean"`.
    """
    import keras  # pylint: disable=import-outside-toplevel
    plain = bank_lib.build_plain_backbone(backbone, width_multiplier)
    convs = [l for l in plain.layers
             if isinstance(l, keras.layers.Conv2D)
             and f"{l.name}/kernel" in weights and l.name in plain.bank_convs]
    for layer in plain.layers:
        for variable in layer.weights:
            key = f"{layer.name}/{variable.name}"
            if key in weights:
                variable.assign(weights[key])
    probe = keras.Model(plain.input, {l.name: l.output for l in convs})
    stats = {l.name: ResponseStatistics(l.filters) for l in convs}
    started, seen = time.time(), 0
    for step, batch in enumerate(images, start=1):
        outputs = probe(batch, training=False)
        for name, responses in outputs.items():
            stats[name].update(keras.ops.convert_to_numpy(responses))
        seen += int(batch.shape[0])
        if step % PROGRESS_EVERY == 0:
            log(f"Response initialization: {seen} images, "
                f"{time.time() - started:.0f} s.")
    if not seen:
        raise ValueError("Response initialization needs at least one image.")
    result = {}
    for name, stat in stats.items():
        components, variances, mean = stat.pca()
        result[f"{name}/components"] = components.astype(np.float32)
        result[f"{name}/variances"] = variances.astype(np.float32)
        result[f"{name}/mean"] = mean.astype(np.float32)
    log(f"Response initialization: PCA of {len(convs)} layers on {seen} "
        f"images in {time.time() - started:.1f} s.")
    return result


def _layer_pca(ri, name):
    key = f"{name}/components"
    if key not in ri:
        raise ValueError(f"Response initialization has no components for "
                         f"layer {name!r}.")
    return ri[key].astype(np.float64), ri[f"{name}/mean"].astype(np.float64)


def apply_bank(model, weights, ri):
    """Sets every bank to `W U` (from the pretrained `weights`)."""
    for layer in model.layers:
        if isinstance(layer, ReparamConv2D):
            components, _ = _layer_pca(ri, layer.name)
            kernel = weights[f"{layer.name}/kernel"].astype(np.float64)
            layer.bank.assign(np.tensordot(kernel, components,
                                           axes=[[3], [0]]).astype(np.float32))


def apply_task(model, task, ri):
    """Starts `task`'s modulators at `U^T` and folds the mean offsets into
    its BatchNorms (call after the task's layers were initialized from the
    pretrained weights)."""
    by_name = {l.name: l for l in model.layers}
    for layer in model.layers:
        if not isinstance(layer, ReparamConv2D):
            continue
        components, mean = _layer_pca(ri, layer.name)
        layer.set_modulator(task, components.T)
        offset = mean - components @ (components.T @ mean)
        bn = by_name.get(task_layer_name(following_bn(layer.name), task))
        if bn is not None and np.any(offset):
            bn.moving_mean.assign(
                (bn.moving_mean.numpy() - offset).astype(np.float32))


def apply(model, weights, ri):
    """Response-initializes `model`: banks and every task's modulators."""
    apply_bank(model, weights, ri)
    for task in model.tasks:
        apply_task(model, task, ri)


def _decomposition_files(path, backbone=None):
    """{layer: {"components": bytes or path, "mean": ...}} of a folder or
    zip in the authors' layout (layer folders anywhere below its root).

    Their RI.zip may hold one folder per backbone (`RI/resnet18/conv1`,
    `RI/resnet34/conv1`): then the one named `backbone` is taken, and
    without one of that name the ambiguity is an error.
    """
    by_prefix = {}  # Folder holding the layer folders -> {layer: files}.

    def add(parts, source):
        prefix, layer, kind = "/".join(parts[:-2]), parts[-2], parts[-1]
        by_prefix.setdefault(prefix, {}).setdefault(layer, {})[
            kind[:-len(".npy")]] = source

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                parts = name.rstrip("/").split("/")
                if len(parts) >= 2 and parts[-1] in ("components.npy",
                                                     "mean.npy"):
                    add(parts, archive.read(name))
    elif os.path.isdir(path):
        for root, _, files in os.walk(path):
            for kind in ("components.npy", "mean.npy"):
                if kind in files:
                    relative = os.path.relpath(root, path).split(os.sep)
                    add([p for p in relative if p != "."] + [kind],
                        os.path.join(root, kind))
    else:
        raise FileNotFoundError(
            f"No decompositions at {path!r}: expected the authors' RI folder "
            "(one folder per conv with components.npy and mean.npy, e.g. "
            "RI/resnet18/) or their RI.zip.")
    if len(by_prefix) <= 1:
        return next(iter(by_prefix.values()), {})
    named = [p for p in by_prefix if p.rsplit("/", 1)[-1] == backbone]
    if len(named) == 1:
        return by_prefix[named[0]]
    raise ValueError(
        f"{path!r} holds decompositions in {len(by_prefix)} folders "
        f"({sorted(by_prefix)}) and none is named after the backbone "
        f"{backbone!r}: pass the one folder to use (e.g. RI/resnet18).")


def _read_npy(source):
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    return np.load(source, allow_pickle=False)


def load_decompositions(path, layers, backbone=None):
    """The authors' precomputed RI (see the module doc) as our RI dict.

    Args:
        path: their RI folder (e.g. `RI/resnet18`) or `RI.zip`.
        layers: {layer name: output channels} of the reparameterized convs
            to initialize; each must have a square `components.npy` of that
            size and a `mean.npy`.
        backbone: picks `<backbone>/` where `path` holds several backbones.

    Returns:
        dict `"<conv>/components"`, `"<conv>/mean"` (float32).
    """
    found = _decomposition_files(path, backbone)
    missing = [name for name in layers if set(found.get(name, {}))
               != {"components", "mean"}]
    if missing:
        raise ValueError(
            f"The decompositions in {path!r} lack components.npy / mean.npy "
            f"for {missing[:5]}{' ...' if len(missing) > 5 else ''}; found "
            f"layers {sorted(found)[:8]}. Expected one folder per conv, "
            "named as torchvision's with '_' (conv1, layer1_0_conv1, ...).")
    ri = {}
    for name, channels in layers.items():
        components = _read_npy(found[name]["components"])
        mean = _read_npy(found[name]["mean"])
        if components.shape != (channels, channels) or mean.shape != (
                channels,):
            raise ValueError(
                f"The decomposition of {name!r} in {path!r} has components "
                f"{components.shape} and mean {mean.shape}; the model's "
                f"layer has {channels} filters (expected ({channels}, "
                f"{channels}) and ({channels},)): another backbone or "
                "width.")
        ri[f"{name}/components"] = components.astype(np.float32)
        ri[f"{name}/mean"] = mean.astype(np.float32)
    return ri


def reparameterized_layers(model):
    """{name: filters} of `model`'s reparameterized convs."""
    return {l.name: int(l.filters) for l in model.layers
            if isinstance(l, ReparamConv2D)}
