"""Pictures: each function draws what it says, with the right numbers, panels and layouts."""

import os
import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg", force=True)  # no window, also when the tests run alone

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from alexnet_lab import architecture as arch  # noqa: E402
from alexnet_lab import plots  # noqa: E402
from alexnet_lab.history import History  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _history(framework, label="", epochs=3, offset=0.0):
    h = History(framework, label)
    for e in range(epochs):
        h.append(loss=1.0 / (e + 1) + offset, accuracy=0.5 + 0.1 * e, val_loss=1.2 / (e + 1), val_accuracy=0.45 + 0.1 * e)
    return h


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------
def test_plot_history_two_frameworks_on_one_figure():
    keras_h, torch_h = _history("keras", epochs=3), _history("torch", "PyTorch run", epochs=2)
    fig = plots.plot_history(keras_h, torch_h)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    loss_ax = fig.axes[0]
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"keras train", "keras validation", "PyTorch run train", "PyTorch run validation"}
    assert lines["keras train"].get_linestyle() == "-" and lines["keras validation"].get_linestyle() == "--"
    assert lines["keras train"].get_color() == lines["keras validation"].get_color()
    assert lines["keras train"].get_color() != lines["PyTorch run train"].get_color()
    np.testing.assert_allclose(lines["keras train"].get_ydata(), keras_h["loss"])
    np.testing.assert_array_equal(lines["PyTorch run validation"].get_xdata(), [1, 2])  # epochs count from 1


def test_plot_history_errors_and_axes():
    h = _history("torch")
    with pytest.raises(ValueError, match="top5.*accuracy, loss"):
        plots.plot_history(h, metrics=("top5",))
    with pytest.raises(ValueError, match="at least one History"):
        plots.plot_history()
    fig = Figure()
    axes = fig.subplots(1, 2)
    with pytest.raises(ValueError, match="pass as many Axes"):
        plots.plot_history(h, ax=axes[0])
    assert plots.plot_history(h, ax=list(axes)) is fig
    assert plots.plot_history(h, metrics="loss", ax=axes[0]) is fig


def test_live_curves_outside_a_notebook_prints_a_line(capsys):
    live = plots.LiveCurves(others=[_history("keras", epochs=4)])
    h = History("torch")
    for e in range(2):
        h.append(loss=1.0 - 0.1 * e, accuracy=0.5 + 0.1 * e, val_loss=1.1, val_accuracy=0.4)
        live.update(h)
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["torch epoch 1: loss 1, accuracy 0.5, val_loss 1.1, val_accuracy 0.4",
                       "torch epoch 2: loss 0.9, accuracy 0.6, val_loss 1.1, val_accuracy 0.4"]
    lines = {line.get_label(): line for line in live.figure.axes[0].get_lines()}
    assert len(lines["torch train"].get_xdata()) == 2 and len(lines["keras train"].get_xdata()) == 4


def test_live_curves_in_a_notebook_replaces_one_output(monkeypatch):
    """In a kernel, the first update displays the figure with a display id, later ones update that output."""
    pytest.importorskip("IPython")
    import IPython.display

    calls = []

    class Handle:
        def update(self, obj):
            calls.append(("update", obj))

    def fake_display(obj, display_id=False):
        calls.append(("display", obj, display_id))
        return Handle()

    monkeypatch.setattr(plots, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = plots.LiveCurves()
    h = History("torch")
    for e in range(3):
        h.append(loss=1.0 / (e + 1), accuracy=0.3 * e, val_loss=1.0, val_accuracy=0.2)
        live.update(h)
    assert [c[0] for c in calls] == ["display", "update", "update"]
    assert calls[0][2] is True
    assert all(c[1].data[:8] == b"\x89PNG\r\n\x1a\n" for c in calls)


def test_in_notebook_is_false_in_pytest():
    assert plots._in_notebook() is False


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
CLASSES = ("cat", "dog", "ship")


def test_show_images_grid_with_names_and_colours():
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    fig = plots.show_images(images, labels, CLASSES, n=5, cols=3)
    assert len(fig.axes) == 5
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["cat", "dog", "ship", "cat", "dog"]
    np.testing.assert_array_equal(fig.axes[3].get_images()[0].get_array(), images[3])

    predictions = labels.copy()
    predictions[1] = 2
    fig = plots.show_images(images, labels, CLASSES, predictions=predictions, n=3)
    titles = [ax.title for ax in fig.axes]
    assert titles[0].get_text() == "cat" and titles[0].get_color() == plots.RIGHT
    assert titles[1].get_text() == "ship\n(true: dog)" and titles[1].get_color() == plots.WRONG


def test_show_images_grayscale_floats_and_bad_layouts():
    gray = np.zeros((4, 28, 28, 1), dtype=np.uint8)
    fig = plots.show_images(gray)
    assert len(fig.axes) == 4 and fig.axes[0].get_images()[0].get_array().shape == (28, 28)
    assert len(plots.show_images(gray[..., 0]).axes) == 4  # (N, H, W): a batch of grayscale images
    one = plots.show_images(np.zeros((32, 32, 3), dtype=np.uint8))  # (H, W, 3): one colour image
    assert len(one.axes) == 1 and one.axes[0].get_images()[0].get_array().shape == (32, 32, 3)
    standardized = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    shown = plots.show_images(standardized).axes[0].get_images()[0].get_array()
    assert shown.min() == pytest.approx(0) and shown.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="channels-first.*np.transpose"):
        plots.show_images(np.zeros((4, 3, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="2 labels for 4 images"):
        plots.show_images(gray, labels=[0, 1])


# ---------------------------------------------------------------------------
# Confusion matrix and mistakes
# ---------------------------------------------------------------------------
Y_TRUE = np.array([0, 0, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 2, 0, 2])


def test_confusion_matrix_by_hand():
    m = plots.confusion_matrix(Y_TRUE, Y_PRED, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0],
                                      [0, 1, 0],
                                      [1, 0, 2]])
    assert m.sum() == len(Y_TRUE)
    np.testing.assert_allclose(plots.per_class_accuracy(Y_TRUE, Y_PRED, 4), [0.5, 1.0, 2 / 3, np.nan])
    np.testing.assert_array_equal(plots.confusion_matrix([1.0, 0.0], [1, 1], 2), [[0, 1], [0, 1]])


@pytest.mark.parametrize("y_true, y_pred, message", [
    ([0, 3], [0, 1], r"y_true must lie in 0\.\.2"),
    ([0, 1], [0], "y_true has 2 labels but y_pred has 1"),
    ([0, 1], [[0.9, 0.1], [0.2, 0.8]], r"probabilities\? take probs.argmax"),
    ([0.5, 1], [0, 1], "integer class indices"),
])
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        plots.confusion_matrix(y_true, y_pred, 3)


def test_plot_confusion_matrix_shows_the_fractions():
    fig = plots.plot_confusion_matrix(Y_TRUE, Y_PRED, CLASSES)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(), [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    assert ax.get_title() == "accuracy 66.7% on 6 images"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)
    counts = plots.plot_confusion_matrix(Y_TRUE, Y_PRED, CLASSES, normalize=False).axes[0]
    np.testing.assert_array_equal(counts.get_images()[0].get_array(), plots.confusion_matrix(Y_TRUE, Y_PRED, 3))
    assert "2" in [t.get_text() for t in counts.texts]


PROBS = np.array([
    [0.90, 0.05, 0.05],  # true 0, right
    [0.20, 0.70, 0.10],  # true 0, wrong with 0.70
    [0.10, 0.80, 0.10],  # true 1, right
    [0.05, 0.05, 0.90],  # true 2, right
    [0.99, 0.00, 0.01],  # true 2, wrong with 0.99
    [0.40, 0.00, 0.60],  # true 2, right
])


def test_confident_mistakes_in_order():
    np.testing.assert_array_equal(plots.confident_mistake_indices(Y_TRUE, PROBS), [4, 1])
    np.testing.assert_array_equal(plots.confident_mistake_indices(Y_TRUE, PROBS, n=1), [4])
    with pytest.raises(ValueError, match="plots.softmax"):
        plots.confident_mistake_indices(Y_TRUE, np.log(PROBS + 1e-3) * 3)  # logits, not probabilities
    np.testing.assert_allclose(plots.softmax(np.log(PROBS[:1] + 1e-12)), PROBS[:1], atol=1e-9)


def test_most_confident_mistakes_plot():
    images = np.zeros((6, 8, 8, 3), dtype=np.uint8)
    fig = plots.most_confident_mistakes(images, Y_TRUE, PROBS, CLASSES)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title() == "cat (99%)\ntrue: ship"
    all_right = plots.most_confident_mistakes(images, PROBS.argmax(1), PROBS, CLASSES)
    assert "No mistakes among 6 images" in all_right.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------
# Filters and feature maps
# ---------------------------------------------------------------------------
def test_filter_mosaic_layout_and_scaling():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(11, 11, 3, 20)).astype(np.float32)
    w[4, 6, 1, 17] = 50.0  # the largest weight of filter 17
    mosaic = plots.filter_mosaic(w, cols=8, pad=1)
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
    fig = plots.plot_filters(w)
    assert len(fig.axes) == 1
    assert fig.axes[0].get_images()[0].get_array().shape == (4 * 6 + 1, 16 * 6 + 1, 3)
    assert fig.axes[0].get_title() == "64 filters of 5×5×3"
    gray = plots.plot_filters(np.random.default_rng(4).normal(size=(5, 5, 1, 6)))
    image = gray.axes[0].get_images()[0]
    assert image.get_array().shape == (7, 6 * 6 + 1) and image.get_cmap().name == "gray"
    with pytest.raises(ValueError, match="96 input channels"):
        plots.plot_filters(np.zeros((3, 3, 96, 256)))
    with pytest.raises(ValueError, match=r"\(kh, kw, in, out\)"):
        plots.plot_filters(np.zeros((5, 5, 3)))


def test_conv1_weights_of_a_torch_model_is_transposed():
    torch = pytest.importorskip("torch")
    from alexnet_lab import torch_models

    model = torch_models.alexnet("cifar10")
    with torch.no_grad():
        model.conv1.weight[5, 2, 3, 4] = 42.0  # (out, in, kh, kw)
    w = plots.conv1_weights(model)
    assert w.shape == (5, 5, 3, 64) and isinstance(w, np.ndarray)
    assert w[3, 4, 2, 5] == 42.0  # (kh, kw, in, out)
    assert plots.conv1_weights(model, "conv2").shape == (5, 5, 64, 192)
    with pytest.raises(ValueError, match="conv1, conv2, conv3"):
        plots.conv1_weights(model, "fc6")
    plots.plot_filters(w)  # and it draws


def test_conv1_weights_of_a_keras_model():
    pytest.importorskip("tensorflow")
    from alexnet_lab import keras_models

    model = keras_models.alexnet("cifar10")
    kernel = model.get_layer("conv1").get_weights()[0].copy()
    kernel[3, 4, 2, 5] = 42.0  # Keras' own layout is already (kh, kw, in, out)
    model.get_layer("conv1").kernel.assign(kernel)
    w = plots.conv1_weights(model)
    assert w.shape == (5, 5, 3, 64) and w[3, 4, 2, 5] == 42.0
    np.testing.assert_array_equal(w, kernel)


def test_conv1_weights_rejects_other_objects():
    with pytest.raises(TypeError, match="Keras or PyTorch model"):
        plots.conv1_weights(np.zeros((3, 3)))


FEATURE_LAYERS = ["conv1", "relu1", "pool1", "conv2", "pool2", "conv5", "pool5", "fc7"]


def _expected_shapes(preset):
    return {r.name: r.output_shape for r in arch.layer_table(preset)}


def test_torch_feature_maps_match_the_layer_table():
    torch = pytest.importorskip("torch")
    from alexnet_lab import torch_models

    model = torch_models.alexnet("cifar10").train()
    image = np.random.default_rng(5).random((32, 32, 3), dtype=np.float32)
    expected = _expected_shapes("cifar10")
    for name in FEATURE_LAYERS:
        assert plots.feature_maps(model, image, name).shape == expected[name], name
    assert model.training  # left in training mode, as it was
    # The values are conv1's output for this image, transposed to (H, W, C).
    with torch.no_grad():
        direct = model.conv1(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(plots.feature_maps(model, image[None], "conv1"), direct, rtol=1e-5, atol=1e-6)
    assert plots.feature_maps(model, image, "relu1").min() >= 0
    with pytest.raises(ValueError, match="no layer 'conv9'.*conv1, relu1"):
        plots.feature_maps(model, image, "conv9")
    with pytest.raises(ValueError, match="image / 255.0"):
        plots.feature_maps(model, (image * 255).astype(np.uint8), "conv1")


def test_keras_feature_maps_match_the_layer_table():
    pytest.importorskip("tensorflow")
    from alexnet_lab import keras_models

    model = keras_models.alexnet("cifar10")
    image = np.random.default_rng(6).random((32, 32, 3), dtype=np.float32)
    expected = _expected_shapes("cifar10")
    for name in FEATURE_LAYERS:
        assert plots.feature_maps(model, image, name).shape == expected[name], name
    relu = plots.feature_maps(model, image, "relu1")
    np.testing.assert_allclose(relu, np.maximum(plots.feature_maps(model, image, "conv1"), 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        plots.feature_maps(model, image, "conv9")


def test_plot_feature_maps_panels_and_dead_channels():
    a = np.random.default_rng(7).random((13, 13, 40)).astype(np.float32)
    a[..., 2] = 0
    fig = plots.plot_feature_maps(a, n=12, cols=4)
    assert len(fig.axes) == 12 and all(len(ax.get_images()) == 1 for ax in fig.axes)
    assert fig.axes[2].get_title() == "2 (all 0)" and fig.axes[3].get_title() == "3"
    assert fig._suptitle.get_text() == "12 of 40 feature maps, 13×13 each"
    with pytest.raises(ValueError, match="fully connected layer"):
        plots.plot_feature_maps(np.zeros(4096))


# ---------------------------------------------------------------------------
# Architecture diagrams and layer costs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset, names", [
    ("classic", ["input", "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8"]),
    ("torchvision", ["input", "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "avgpool",
                     "fc6", "fc7", "fc8"]),
    ("fashion_mnist", ["input", "resize", "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
                       "fc6", "fc7", "fc8"]),
    ("lenet5", ["input", "conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3"]),
])
def test_architecture_stages(preset, names):
    stages = plots.architecture_stages(preset)
    assert [s.name for s in stages] == names
    shapes = _expected_shapes(preset)
    for s in stages[1:]:
        assert s.shape == shapes[s.name]


def test_architecture_stage_details():
    paper = {s.name: s for s in plots.architecture_stages("paper")}
    assert paper["conv1"].operation == "11×11 conv, stride 4" and paper["conv1"].extras == ("ReLU", "LRN")
    assert paper["conv2"].operation == "5×5 conv, 2 groups"
    assert paper["pool1"].operation == "3×3 max-pool, stride 2"
    assert paper["fc6"].extras == ("ReLU", "dropout 0.5") and paper["fc8"].shape == (1000,)
    assert plots.architecture_stages("classic", num_classes=10)[-1].shape == (10,)
    assert plots.architecture_stages("lenet5")[1].extras == ("tanh",)


@pytest.mark.parametrize("preset", [*arch.preset_names(), "lenet5"])
def test_plot_architecture_draws_one_box_per_stage(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the presets draw without size warnings
        fig = plots.plot_architecture(preset)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    stages = plots.architecture_stages(preset)
    assert len(boxes) == len(stages)
    heights = {s.name: b.get_height() for s, b in zip(stages, boxes)}
    if preset == "classic":
        assert heights["input"] > heights["conv1"] > heights["pool1"] > heights["pool2"] > heights["pool5"]
    params = arch.totals(arch.layer_table(preset))["params"]
    assert f"{params:,} parameters" in ax.get_title()
    texts = [t.get_text() for t in ax.texts]
    assert "fc8" in texts or "fc3" in texts


def test_plot_layer_costs_bars():
    rows = arch.layer_table("classic")
    fig = plots.plot_layer_costs(rows, name="AlexNet")
    assert len(fig.axes) == 3
    shown = [r for r in rows if r.kind in ("Conv", "MaxPool", "Dense")]
    params_bars = fig.axes[0].patches
    assert len(params_bars) == len(shown)
    heights = np.nan_to_num([b.get_height() for b in params_bars])
    np.testing.assert_array_equal(heights, [r.params for r in shown])
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == [r.name for r in shown]
    assert fig._suptitle.get_text() == "AlexNet: where the 62.4M parameters and 1.14G MACs live"
    assert any(t.get_text() == "37.8M\n61%" for t in fig.axes[0].texts)  # fc6 holds most of the parameters


# ---------------------------------------------------------------------------
# Saving and the README figures
# ---------------------------------------------------------------------------
def test_save_figure_writes_atomically(tmp_path):
    fig = plots.plot_history(_history("torch"))
    path = plots.save_figure(fig, tmp_path / "sub" / "curves.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "sub") == ["curves.png"]

    def broken_savefig(file, **kwargs):
        file.write(b"half an image")
        raise OSError("disk full")

    fig.savefig = broken_savefig
    with pytest.raises(OSError, match="disk full"):
        plots.save_figure(fig, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"  # the old picture is intact
    assert os.listdir(tmp_path / "sub") == ["curves.png"]  # and no temporary file is left
    with pytest.raises(ValueError, match="extension"):
        plots.save_figure(fig, tmp_path / "curves")


def test_make_figures_script(tmp_path):
    from PIL import Image

    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_figures.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(tmp_path))
    assert names == ["architecture_classic.png", "architecture_lenet5.png", "architecture_paper.png",
                     "layer_costs_classic.png", "layer_costs_lenet5.png"]
    for name in names:
        width, height = Image.open(tmp_path / name).size
        assert 500 < width <= 1600 and 300 < height <= 1000, (name, width, height)
        assert os.path.getsize(tmp_path / name) < 150_000


def test_import_needs_no_framework():
    code = ("import sys; from alexnet_lab import plots; "
            "print(*(m in sys.modules for m in ('torch', 'tensorflow', 'keras', 'matplotlib.pyplot')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["False", "False", "False", "False"]
