"""Response initialization: PCA properties and an unchanged function."""

import keras
import numpy as np
import pytest

from rmtl_tf import build_model
from rmtl_tf.models import bank, response_init


@pytest.fixture(scope="module")
def pretrained():
    rng = np.random.default_rng(0)
    plain = bank.build_plain_backbone("resnet_tiny", 1.0, (32, 32))
    for layer in plain.layers:
        for v in layer.weights:
            base = 1.0 if v.name in ("gamma", "moving_variance") else 0.0
            v.assign((base + 0.2 * rng.normal(size=v.shape)).astype(
                "float32"))
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    weights = bank.weights_from_plain(plain)
    ri = response_init.compute(weights, [images[:2], images[2:]],
                               "resnet_tiny", 1.0, log=lambda *_: None)
    return weights, images, ri


def test_streaming_statistics_equal_numpy_pca():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0
    stats = response_init.ResponseStatistics(6)
    for chunk in np.array_split(data, 7):
        stats.update(chunk)
    components, variances, mean = stats.pca()
    np.testing.assert_allclose(mean, data.mean(0), atol=1e-10)
    reference = np.linalg.svd(data - data.mean(0), compute_uv=False)
    np.testing.assert_allclose(variances, reference**2 / len(data),
                               rtol=1e-8)
    np.testing.assert_allclose(components.T @ components, np.eye(6),
                               atol=1e-10)


def test_components_orthonormal_and_ordered(pretrained):
    _, _, ri = pretrained
    layers = [k[:-len("/components")] for k in ri if k.endswith(
        "/components")]
    assert "conv1" in layers and "layer4_0_conv2" in layers
    assert not any("downsample" in name for name in layers)
    for name in layers:
        u = ri[f"{name}/components"].astype(np.float64)
        np.testing.assert_allclose(u.T @ u, np.eye(u.shape[0]), atol=1e-5)
        variances = ri[f"{name}/variances"]
        assert np.all(np.diff(variances) <= 1e-6), name


@pytest.mark.parametrize("nff", [False, True])
def test_network_function_is_unchanged(pretrained, nff):
    weights, images, ri = pretrained
    model = build_model("resnet_tiny", ["semseg", "depth"],
                        num_classes={"semseg": 4}, head_channels=8,
                        low_level_channels=4, image_size=(32, 32), nff=nff)
    bank.load_bank_into(model, weights)
    before = {t: np.asarray(v) for t, v in model(images).items()}
    response_init.apply(model, weights, ri)
    after = model(images)
    for task, value in before.items():
        error = np.abs(np.asarray(after[task]) - value).max()
        assert error <= 1e-4 * np.abs(value).max(), task
    # The bank did change: it is expressed in the principal basis.
    conv1 = model.get_layer("conv1")
    assert not np.allclose(conv1.bank.numpy(), weights["conv1/kernel"])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(conv1.task_kernel("depth")),
        weights["conv1/kernel"], atol=1e-5)


def test_following_bn_names():
    assert response_init.following_bn("conv1") == "bn1"
    assert response_init.following_bn("layer3_1_conv2") == "layer3_1_bn2"


def _write_authors_ri(root, layers, rng):
    """Decompositions in the authors' RI layout (their decomp/ output):
    <layer>/components.npy (square, orthogonal: pca.components_.T),
    mean.npy, singular_values.npy."""
    written = {}
    for name, channels in layers.items():
        folder = root / "RI" / "resnet18" / name
        folder.mkdir(parents=True)
        u, _ = np.linalg.qr(rng.normal(size=(channels, channels)))
        mean = rng.normal(size=channels)
        np.save(folder / "components.npy", u)
        np.save(folder / "mean.npy", mean)
        np.save(folder / "singular_values.npy", np.sort(rng.random(
            channels))[::-1])
        written[name] = (u, mean)
    return written


def _their_create_decompositions(torch_weights, running_means, written):
    """numpy restatement of the authors' `create_decompositions` (and
    `create_nff_layer`) on torch-layout weights: Ws = U^T W, Wt = U, NFF g
    the norm of each row of Wt, the following BN's running mean plus
    y_mean - U U^T y_mean."""
    out = {}
    for name, (u, mean) in written.items():
        w = torch_weights[name]
        c_out, c_in, kh, kw = w.shape
        out[f"{name}.Ws.weight"] = (u.T @ w.reshape(c_out, -1)).reshape(
            -1, c_in, kh, kw)
        wt = u[:, :, None, None]
        out[f"{name}.Wt.weight_v"] = wt
        out[f"{name}.Wt.weight_g"] = np.linalg.norm(wt.squeeze(), axis=1)
        bn = response_init.following_bn(name)
        out[f"{bn}.running_mean"] = running_means[bn] + (
            mean - u @ u.T @ mean)
    return out


@pytest.mark.parametrize("packed", ["folder", "zip"])
def test_authors_decompositions_import_as_their_construction(
        pretrained, tmp_path, packed):
    import shutil  # pylint: disable=import-outside-toplevel
    weights, images, _ = pretrained
    model = build_model("resnet_tiny", ["semseg"], num_classes={"semseg": 4},
                        head_channels=8, low_level_channels=4,
                        image_size=(32, 32), nff=True)
    bank.load_bank_into(model, weights)
    layers = response_init.reparameterized_layers(model)
    written = _write_authors_ri(tmp_path, layers, np.random.default_rng(2))
    path = str(tmp_path / "RI" / "resnet18")
    if packed == "zip":
        path = shutil.make_archive(str(tmp_path / "RI_pack"), "zip",
                                   str(tmp_path), "RI")
    by_name = {l.name: l for l in model.layers}
    running = {response_init.following_bn(n): by_name[
        f"{response_init.following_bn(n)}_semseg"].moving_mean.numpy()
               for n in layers}
    torch_weights = {n: np.transpose(weights[f"{n}/kernel"], (3, 2, 0, 1))
                     for n in layers}
    theirs = _their_create_decompositions(torch_weights, running, written)
    before = np.asarray(model(images)["semseg"])

    ri = response_init.load_decompositions(path, layers)
    response_init.apply(model, weights, ri)
    for name in layers:
        layer = by_name[name]
        np.testing.assert_allclose(
            layer.bank.numpy(),
            np.transpose(theirs[f"{name}.Ws.weight"], (2, 3, 1, 0)),
            atol=1e-5, err_msg=name)
        parts = layer.modulators["semseg"]
        # Our modulator is [in, out]: theirs (out, in, 1, 1) transposed.
        np.testing.assert_allclose(
            parts["v"].numpy(), theirs[f"{name}.Wt.weight_v"][..., 0, 0].T,
            atol=1e-6, err_msg=name)
        np.testing.assert_allclose(parts["g"].numpy(),
                                   theirs[f"{name}.Wt.weight_g"], atol=1e-6)
        bn = response_init.following_bn(name)
        np.testing.assert_allclose(
            by_name[f"{bn}_semseg"].moving_mean.numpy(),
            theirs[f"{bn}.running_mean"], atol=1e-5, err_msg=bn)
    # Wt . Ws' = W: the network computes what it did before.
    np.testing.assert_allclose(np.asarray(model(images)["semseg"]), before,
                               atol=1e-3)


def test_authors_decompositions_errors_name_the_problem(tmp_path):
    rng = np.random.default_rng(3)
    _write_authors_ri(tmp_path, {"conv1": 8, "layer1_0_conv1": 4}, rng)
    path = str(tmp_path / "RI" / "resnet18")
    with pytest.raises(ValueError, match=r"lack .*\['layer1_0_conv2'\]"):
        response_init.load_decompositions(
            path, {"conv1": 8, "layer1_0_conv2": 8})
    with pytest.raises(ValueError, match=r"'layer1_0_conv1'.*\(4, 4\).*"
                       r"8 filters"):
        response_init.load_decompositions(
            path, {"conv1": 8, "layer1_0_conv1": 8})
    with pytest.raises(FileNotFoundError, match="RI folder"):
        response_init.load_decompositions(str(tmp_path / "nope"),
                                          {"conv1": 8})


@pytest.mark.parametrize("packed", ["folder", "zip"])
def test_decompositions_of_two_backbones_pick_the_model_s(tmp_path, packed):
    """An RI.zip with RI/resnet18 and RI/resnet34 (same layer names): the
    backbone's folder is read, never a mix; no match is an error."""
    import shutil  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(4)
    for backbone in ("resnet18", "resnet34"):
        for name in ("conv1", "layer1_0_conv1"):
            folder = tmp_path / "RI" / backbone / name
            folder.mkdir(parents=True)
            np.save(folder / "components.npy", rng.normal(size=(4, 4)))
            np.save(folder / "mean.npy", np.full(4, float(backbone[-2:])))
    path = str(tmp_path / "RI")
    if packed == "zip":
        path = shutil.make_archive(str(tmp_path / "RI_pack"), "zip",
                                   str(tmp_path), "RI")
    layers = {"conv1": 4, "layer1_0_conv1": 4}
    for backbone, value in (("resnet18", 18.0), ("resnet34", 34.0)):
        ri = response_init.load_decompositions(path, layers, backbone)
        for name in layers:
            np.testing.assert_array_equal(ri[f"{name}/mean"], value)
    with pytest.raises(ValueError, match="2 folders.*'resnet50'"):
        response_init.load_decompositions(path, layers, "resnet50")
