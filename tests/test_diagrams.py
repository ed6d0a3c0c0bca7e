"""diagrams: architecture diagrams (one box per stage) and per-layer cost bars."""

import warnings

import matplotlib

matplotlib.use("Agg", force=True)  # no window, also when the tests run alone

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from alexnet_lab.core import architecture as arch  # noqa: E402
from alexnet_lab.teaching import diagrams  # noqa: E402


def _expected_shapes(preset):
    return {r.name: r.output_shape for r in arch.layer_table(preset)}


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
    stages = diagrams.architecture_stages(preset)
    assert [s.name for s in stages] == names
    shapes = _expected_shapes(preset)
    for s in stages[1:]:
        assert s.shape == shapes[s.name]


def test_architecture_stage_details():
    paper = {s.name: s for s in diagrams.architecture_stages("paper")}
    assert paper["conv1"].operation == "11×11 conv, stride 4" and paper["conv1"].extras == ("ReLU", "LRN")
    assert paper["conv2"].operation == "5×5 conv, 2 groups"
    assert paper["pool1"].operation == "3×3 max-pool, stride 2"
    assert paper["fc6"].extras == ("ReLU", "dropout 0.5") and paper["fc8"].shape == (1000,)
    assert diagrams.architecture_stages("classic", num_classes=10)[-1].shape == (10,)
    assert diagrams.architecture_stages("lenet5")[1].extras == ("tanh",)


@pytest.mark.parametrize("preset", [*arch.preset_names(), "lenet5"])
def test_plot_architecture_draws_one_box_per_stage(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the presets draw without size warnings
        fig = diagrams.plot_architecture(preset)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    stages = diagrams.architecture_stages(preset)
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
    fig = diagrams.plot_layer_costs(rows, name="AlexNet")
    assert len(fig.axes) == 3
    shown = [r for r in rows if r.kind in ("Conv", "MaxPool", "Dense")]
    params_bars = fig.axes[0].patches
    assert len(params_bars) == len(shown)
    heights = np.nan_to_num([b.get_height() for b in params_bars])
    np.testing.assert_array_equal(heights, [r.params for r in shown])
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == [r.name for r in shown]
    assert fig._suptitle.get_text() == "AlexNet: where the 62.4M parameters and 1.14G MACs live"
    assert any(t.get_text() == "37.8M\n61%" for t in fig.axes[0].texts)  # fc6 holds most of the parameters
