"""evaluation: confusion matrices, per-class accuracy, softmax and the order of the confident mistakes."""

import matplotlib

matplotlib.use("Agg", force=True)  # no window, also when the tests run alone

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alexnet_lab.teaching import evaluation  # noqa: E402

CLASSES = ("cat", "dog", "ship")

# ---------------------------------------------------------------------------
# Confusion matrix and mistakes
# ---------------------------------------------------------------------------
Y_TRUE = np.array([0, 0, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 2, 0, 2])


def test_confusion_matrix_by_hand():
    m = evaluation.confusion_matrix(Y_TRUE, Y_PRED, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0],
                                      [0, 1, 0],
                                      [1, 0, 2]])
    assert m.sum() == len(Y_TRUE)
    np.testing.assert_allclose(evaluation.per_class_accuracy(Y_TRUE, Y_PRED, 4), [0.5, 1.0, 2 / 3, np.nan])
    np.testing.assert_array_equal(evaluation.confusion_matrix([1.0, 0.0], [1, 1], 2), [[0, 1], [0, 1]])


@pytest.mark.parametrize("y_true, y_pred, message", [
    ([0, 3], [0, 1], r"y_true must lie in 0\.\.2"),
    ([0, 1], [0], "y_true has 2 labels but y_pred has 1"),
    ([0, 1], [[0.9, 0.1], [0.2, 0.8]], r"probabilities\? take probs.argmax"),
    ([0.5, 1], [0, 1], "integer class indices"),
])
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        evaluation.confusion_matrix(y_true, y_pred, 3)


def test_plot_confusion_matrix_shows_the_fractions():
    fig = evaluation.plot_confusion_matrix(Y_TRUE, Y_PRED, CLASSES)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(), [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    assert ax.get_title() == "accuracy 66.7% on 6 images"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)
    counts = evaluation.plot_confusion_matrix(Y_TRUE, Y_PRED, CLASSES, normalize=False).axes[0]
    np.testing.assert_array_equal(counts.get_images()[0].get_array(), evaluation.confusion_matrix(Y_TRUE, Y_PRED, 3))
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
    np.testing.assert_array_equal(evaluation.confident_mistake_indices(Y_TRUE, PROBS), [4, 1])
    np.testing.assert_array_equal(evaluation.confident_mistake_indices(Y_TRUE, PROBS, n=1), [4])
    with pytest.raises(ValueError, match="evaluation.softmax"):
        evaluation.confident_mistake_indices(Y_TRUE, np.log(PROBS + 1e-3) * 3)  # logits, not probabilities
    np.testing.assert_allclose(evaluation.softmax(np.log(PROBS[:1] + 1e-12)), PROBS[:1], atol=1e-9)
