"""filters: first-layer filter mosaics, conv1 weights and feature maps of Keras and PyTorch models."""

import matplotlib

matplotlib.use("Agg", force=True)  # no window, also when the tests run alone

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alexnet_lab.core import architecture as arch  # noqa: E402
from alexnet_lab.teaching import filters  # noqa: E402


# ---------------------------------------------------------------------------
# Filters and feature maps
# ---------------------------------------------------------------------------
def test_filter_mosaic_layout_and_scaling():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(11, 11, 3, 20)).astype(np.float32)
    w[4, 6, 1, 17] = 50.0  # the largest weight of filter 17
    mosaic = filters.filter_mosaic(w, cols=8, pad=1)
    assert mosaic.shape == (3 * 12 + 1, 8 * 12 + 1, 3)
    r, c = divmod(17, 8)
    top, left = 1 + r * 12, 1 + c * 12
    tile = mosaic[top:top + 11, left:left + 11]
    assert tile[4, 6, 1] == 1.0 and tile.min() == 0.0  # each filter scaled to 0-1 on its own
    np.testing.assert_allclose(tile, (w[..., 17] - w[..., 17].min()) / (w[..., 17].max() - w[..., 17].min()))
    assert np.all(mosaic[0] == 1.0)  # white separator lines
    assert np.all(mosaic[-(12 + 1):, -(4 * 12):] == 1.0)  # 20 filters: the last row's last 4 cells are empty


def test_plot_filters_colour_and_gray():
    w = np.random.default_rng(3).normal(size=(5, 5, 3, 64))
    fig = filters.plot_filters(w)
    assert len(fig.axes) == 1
    assert fig.axes[0].get_images()[0].get_array().shape == (4 * 6 + 1, 16 * 6 + 1, 3)
    assert fig.axes[0].get_title() == "64 filters of 5×5×3"
    gray = filters.plot_filters(np.random.default_rng(4).normal(size=(5, 5, 1, 6)))
    image = gray.axes[0].get_images()[0]
    assert image.get_array().shape == (7, 6 * 6 + 1) and image.get_cmap().name == "gray"
    with pytest.raises(ValueError, match="96 input channels"):
        filters.plot_filters(np.zeros((3, 3, 96, 256)))
    with pytest.raises(ValueError, match=r"\(kh, kw, in, out\)"):
        filters.plot_filters(np.zeros((5, 5, 3)))


def test_conv1_weights_of_a_torch_model_is_transposed():
    torch = pytest.importorskip("torch")
    from alexnet_lab.torch import models as torch_models

    model = torch_models.alexnet("cifar10")
    with torch.no_grad():
        model.conv1.weight[5, 2, 3, 4] = 42.0  # (out, in, kh, kw)
    w = filters.conv1_weights(model)
    assert w.shape == (5, 5, 3, 64) and isinstance(w, np.ndarray)
    assert w[3, 4, 2, 5] == 42.0  # (kh, kw, in, out)
    assert filters.conv1_weights(model, "conv2").shape == (5, 5, 64, 192)
    with pytest.raises(ValueError, match="conv1, conv2, conv3"):
        filters.conv1_weights(model, "fc6")
    filters.plot_filters(w)  # and it draws


def test_conv1_weights_of_a_keras_model():
    pytest.importorskip("tensorflow")
    from alexnet_lab.keras import models as keras_models

    model = keras_models.alexnet("cifar10")
    kernel = model.get_layer("conv1").get_weights()[0].copy()
    kernel[3, 4, 2, 5] = 42.0  # Keras' own layout is already (kh, kw, in, out)
    model.get_layer("conv1").kernel.assign(kernel)
    w = filters.conv1_weights(model)
    assert w.shape == (5, 5, 3, 64) and w[3, 4, 2, 5] == 42.0
    np.testing.assert_array_equal(w, kernel)


def test_conv1_weights_rejects_other_objects():
    with pytest.raises(TypeError, match="Expected a Keras model or a PyTorch nn.Module"):
        filters.conv1_weights(np.zeros((3, 3)))


FEATURE_LAYERS = ["conv1", "relu1", "pool1", "conv2", "pool2", "conv5", "pool5", "fc7"]


def _expected_shapes(preset):
    return {r.name: r.output_shape for r in arch.layer_table(preset)}


def test_torch_feature_maps_match_the_layer_table():
    torch = pytest.importorskip("torch")
    from alexnet_lab.torch import models as torch_models

    model = torch_models.alexnet("cifar10").train()
    image = np.random.default_rng(5).random((32, 32, 3), dtype=np.float32)
    expected = _expected_shapes("cifar10")
    for name in FEATURE_LAYERS:
        assert filters.feature_maps(model, image, name).shape == expected[name], name
    assert model.training  # left in training mode, as it was
    # The values are conv1's output for this image, transposed to (H, W, C).
    with torch.no_grad():
        direct = model.conv1(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(filters.feature_maps(model, image[None], "conv1"), direct, rtol=1e-5, atol=1e-6)
    assert filters.feature_maps(model, image, "relu1").min() >= 0
    with pytest.raises(ValueError, match="no layer 'conv9'.*conv1, relu1"):
        filters.feature_maps(model, image, "conv9")
    with pytest.raises(ValueError, match="image / 255.0"):
        filters.feature_maps(model, (image * 255).astype(np.uint8), "conv1")


def test_keras_feature_maps_match_the_layer_table():
    pytest.importorskip("tensorflow")
    from alexnet_lab.keras import models as keras_models

    model = keras_models.alexnet("cifar10")
    image = np.random.default_rng(6).random((32, 32, 3), dtype=np.float32)
    expected = _expected_shapes("cifar10")
    for name in FEATURE_LAYERS:
        assert filters.feature_maps(model, image, name).shape == expected[name], name
    relu = filters.feature_maps(model, image, "relu1")
    np.testing.assert_allclose(relu, np.maximum(filters.feature_maps(model, image, "conv1"), 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        filters.feature_maps(model, image, "conv9")


def test_plot_feature_maps_panels_and_dead_channels():
    a = np.random.default_rng(7).random((13, 13, 40)).astype(np.float32)
    a[..., 2] = 0
    fig = filters.plot_feature_maps(a, n=12, cols=4)
    assert len(fig.axes) == 12 and all(len(ax.get_images()) == 1 for ax in fig.axes)
    assert fig.axes[2].get_title() == "2 (all 0)" and fig.axes[3].get_title() == "3"
    assert fig._suptitle.get_text() == "12 of 40 feature maps, 13×13 each"
    with pytest.raises(ValueError, match="fully connected layer"):
        filters.plot_feature_maps(np.zeros(4096))
