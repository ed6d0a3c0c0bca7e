"""Small package helpers that notebooks 05 (CIFAR-10) and 06 (Fashion-MNIST) use.

``notebook.start(topic=...)``, ``architecture.compare_tables``, ``evaluation.plot_per_class_accuracy``,
``plots.plot_history`` and ``gallery.show_images``.
"""

import numpy as np
import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.core import profiles
from alexnet_lab.teaching import evaluation, gallery, notebook, plots


@pytest.fixture(autouse=True)
def no_profile_choice(monkeypatch):
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    profiles.use(None)
    yield
    profiles.use(None)


# --- notebook.start(topic=...) --------------------------------------------------------------
def test_start_with_topic_returns_the_notebooks_settings(capsys):
    profile = notebook.start("laptop", seed=None, topic="cifar10")
    expected = profiles.get("laptop").for_notebook("cifar10")
    assert profile == expected
    assert profile.topic == "cifar10"
    assert profile.per_class == profiles.PROFILES["laptop"].overrides["cifar10"]["per_class"]
    printed = capsys.readouterr().out
    assert "CIFAR-10" in printed and "Estimated training time of this notebook" in printed


def test_start_without_topic_is_the_generic_profile(capsys):
    profile = notebook.start("smoke", seed=None)
    assert profile.topic is None and profile == profiles.get("smoke")
    assert "Estimated time" not in capsys.readouterr().out


def test_start_with_an_unknown_topic_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known topics: lenet5, fashion_mnist, cifar10"):
        notebook.start("smoke", seed=None, topic="imagenet")


# --- architecture.compare_tables ------------------------------------------------------------
def _line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{name} "))


def test_compare_tables_shows_both_sides_of_each_layer():
    text = arch.compare_tables(arch.layer_table("classic", num_classes=10), arch.layer_table("cifar10"),
                               labels=("classic", "cifar10"))
    conv1 = _line(text, "conv1")
    assert "11×11/4, pad 0" in conv1 and "55×55×96" in conv1 and "34,944" in conv1
    assert "5×5/1, pad 2" in conv1 and "32×32×64" in conv1 and "4,864" in conv1
    assert "9216" in _line(text, "flatten") and "2304" in _line(text, "flatten")
    # Activations and dropout change no shape: they are left out.
    assert not any(line.startswith(("relu", "dropout")) for line in text.splitlines())


def test_compare_tables_totals_and_ratio():
    a, b = arch.layer_table("classic", num_classes=10), arch.layer_table("cifar10")
    text = arch.compare_tables(a, b, labels=("classic", "cifar10"))
    params = _line(text, "parameters")
    assert f"{arch.totals(a)['params']:,}" in params and "5,871,434" in params
    ratio = float(params.rsplit("|", 1)[1])
    assert ratio == pytest.approx(5_871_434 / arch.totals(a)["params"], rel=1e-2)


def test_compare_tables_marks_layers_only_one_network_has():
    text = arch.compare_tables(arch.layer_table("fashion_mnist"), arch.layer_table("lenet5"),
                               labels=("AlexNet", "LeNet-5"))
    resize = _line(text, "resize")
    assert "227×227×1" in resize and resize.rstrip().endswith("-")
    fc1 = _line(text, "fc1")
    assert fc1.split("|")[1].split() == ["-", "-", "-"] and "48,120" in fc1


def test_compare_tables_needs_two_labels():
    rows = arch.layer_table("cifar10")
    with pytest.raises(ValueError, match="two tables"):
        arch.compare_tables(rows, rows, labels=("only one",))


# --- evaluation.plot_per_class_accuracy -----------------------------------------------------
def test_per_class_accuracy_bars_have_the_right_lengths():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    perfect = y_true.copy()
    half = np.array([0, 1, 1, 0, 2, 2, 0, 0])  # class 0: 1/2, class 1: 1/2, class 2: 2/4
    fig = evaluation.plot_per_class_accuracy(y_true, {"A": perfect, "B": half}, ["x", "y", "z"])
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths[:3] == [1.0, 1.0, 1.0]
    assert widths[3:] == [0.5, 0.5, 0.5]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "A (100.0% overall)" in labels and "B (50.0% overall)" in labels
    assert any(text.startswith("chance (33%)") for text in labels)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "z"]


def test_per_class_accuracy_accepts_one_model_and_shows_empty_classes_as_zero():
    fig = evaluation.plot_per_class_accuracy([0, 0, 1], [0, 1, 1], ["a", "b", "c"])
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths == [0.5, 1.0, 0.0]  # class "c" has no images: no bar


def test_per_class_accuracy_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="3 labels but the predictions of 'A' have 2"):
        evaluation.plot_per_class_accuracy([0, 1, 1], {"A": [0, 1]}, ["a", "b"])
    with pytest.raises(ValueError, match="must lie in 0..1"):
        evaluation.plot_per_class_accuracy([0, 1], {"A": [0, 5]}, ["a", "b"])


# --- plots.plot_history with a single epoch (the smoke profile) ------------------------------
def test_history_of_one_epoch_is_drawn_at_epoch_one():
    from alexnet_lab.core.history import History

    h = History("torch", "one epoch")
    h.append(loss=1.0, accuracy=0.5, val_loss=1.2, val_accuracy=0.4)
    fig = plots.plot_history(h)
    for ax in fig.axes:
        assert ax.get_xlim() == (0.5, 1.5)
        assert [t for t in ax.get_xticks() if 0.5 <= t <= 1.5] == [1.0]


# --- gallery.show_images: titles of one row stay clear of the images above --------------------
def test_image_grid_titles_do_not_overlap_the_row_above():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 28, 28, 1), dtype=np.uint8)
    names = ["Ankle boot", "Sneaker"] * 5
    fig = gallery.show_images(images, np.arange(20) % 10, names, n=20, cols=10, title="two rows")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = fig.axes
    for above, below in zip(axes[:10], axes[10:]):
        title = below.title.get_window_extent(renderer)
        image = above.images[0].get_window_extent(renderer)  # the picture itself (the axes box is wider)
        assert title.y1 <= image.y0, f"a second-row title (top at {title.y1:.1f} px) overlaps the image above it " \
                                     f"(bottom at {image.y0:.1f} px)"
