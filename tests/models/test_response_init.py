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
