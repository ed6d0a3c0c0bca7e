"""gallery: grids of images titled with their classes, and the most confident mistakes."""

import matplotlib

matplotlib.use("Agg", force=True)  # no window, also when the tests run alone

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alexnet_lab.teaching import gallery  # noqa: E402

# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
CLASSES = ("cat", "dog", "ship")


def test_show_images_grid_with_names_and_colours():
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    fig = gallery.show_images(images, labels, CLASSES, n=5, cols=3)
    assert len(fig.axes) == 5
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["cat", "dog", "ship", "cat", "dog"]
    np.testing.assert_array_equal(fig.axes[3].get_images()[0].get_array(), images[3])

    predictions = labels.copy()
    predictions[1] = 2
    fig = gallery.show_images(images, labels, CLASSES, predictions=predictions, n=3)
    titles = [ax.title for ax in fig.axes]
    assert titles[0].get_text() == "cat" and titles[0].get_color() == gallery.RIGHT
    assert titles[1].get_text() == "ship\n(true: dog)" and titles[1].get_color() == gallery.WRONG


def test_show_images_grayscale_floats_and_bad_layouts():
    gray = np.zeros((4, 28, 28, 1), dtype=np.uint8)
    fig = gallery.show_images(gray)
    assert len(fig.axes) == 4 and fig.axes[0].get_images()[0].get_array().shape == (28, 28)
    assert len(gallery.show_images(gray[..., 0]).axes) == 4  # (N, H, W): a batch of grayscale images
    one = gallery.show_images(np.zeros((32, 32, 3), dtype=np.uint8))  # (H, W, 3): one colour image
    assert len(one.axes) == 1 and one.axes[0].get_images()[0].get_array().shape == (32, 32, 3)
    standardized = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    shown = gallery.show_images(standardized).axes[0].get_images()[0].get_array()
    assert shown.min() == pytest.approx(0) and shown.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="channels-first.*np.transpose"):
        gallery.show_images(np.zeros((4, 3, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="2 labels for 4 images"):
        gallery.show_images(gray, labels=[0, 1])


# ---------------------------------------------------------------------------
# Mistakes
# ---------------------------------------------------------------------------
Y_TRUE = np.array([0, 0, 1, 2, 2, 2])
PROBS = np.array([
    [0.90, 0.05, 0.05],  # true 0, right
    [0.20, 0.70, 0.10],  # true 0, wrong with 0.70
    [0.10, 0.80, 0.10],  # true 1, right
    [0.05, 0.05, 0.90],  # true 2, right
    [0.99, 0.00, 0.01],  # true 2, wrong with 0.99
    [0.40, 0.00, 0.60],  # true 2, right
])


def test_most_confident_mistakes_plot():
    images = np.zeros((6, 8, 8, 3), dtype=np.uint8)
    fig = gallery.most_confident_mistakes(images, Y_TRUE, PROBS, CLASSES)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title() == "cat (99%)\ntrue: ship"
    all_right = gallery.most_confident_mistakes(images, PROBS.argmax(1), PROBS, CLASSES)
    assert "No mistakes among 6 images" in all_right.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="5 images but 6 rows of probabilities"):
        gallery.most_confident_mistakes(images[:5], Y_TRUE, PROBS, CLASSES)
    with pytest.raises(ValueError, match="evaluation.softmax"):
        gallery.most_confident_mistakes(images, Y_TRUE, np.log(PROBS + 1e-3) * 3, CLASSES)  # logits
