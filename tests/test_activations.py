"""activations: the network of the paper's Figure 1, and ReLU against tanh (notebook 01)."""

import os

import numpy as np
import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.core.history import History
from alexnet_lab.data import ImageSet
from alexnet_lab.teaching import activations

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---------------------------------------------------------------------------
# Framework-free parts
# ---------------------------------------------------------------------------
def test_figure1_net_is_four_weighted_layers_with_the_asked_activation():
    input_shape, layers = activations.describe_figure1_net("tanh")
    rows = arch.compute_rows(input_shape, layers)
    assert input_shape == (32, 32, 3)
    assert [r.name for r in rows if r.params] == ["conv1", "conv2", "conv3", "fc4"]
    assert {layer.function for layer in layers if isinstance(layer, arch.Activation)} == {"tanh"}
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["pool1"] == (15, 15, 32) and shapes["pool2"] == (7, 7, 32) and shapes["pool3"] == (3, 3, 64)
    # (5·5·3 + 1)·32 + (5·5·32 + 1)·32 + (5·5·32 + 1)·64 + (3·3·64 + 1)·10
    assert arch.totals(rows)["params"] == 2432 + 25632 + 51264 + 5770


def test_figure1_net_rejects_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        activations.describe_figure1_net("gelu")
    with pytest.raises(ValueError, match="odd"):
        activations.describe_figure1_net(kernel=4)
    with pytest.raises(ValueError, match="too small"):
        activations.describe_figure1_net(image_size=4)


def _history(errors):
    h = History("torch")
    for e in errors:
        h.append(accuracy=1 - e)
    return h


def test_epochs_to_error_counts_from_one_and_reads_accuracy_when_there_is_no_error():
    h = _history([0.8, 0.5, 0.25, 0.1])
    assert activations.epochs_to_error(h, 0.25) == 3  # "at most" the target counts
    assert activations.epochs_to_error(h, 0.05) is None
    h.metrics["error"] = [0.9, 0.2, 0.1, 0.1]  # an explicit error wins over 1 - accuracy
    assert activations.epochs_to_error(h, 0.25) == 2
    with pytest.raises(ValueError, match="between 0 and 1"):
        activations.epochs_to_error(h, 25)


def test_speedup_ratio_lower_bound_and_nothing():
    assert activations.speedup(2, 12, 20) == (6.0, False)
    assert activations.speedup(4, None, 20) == (21 / 4, True)  # tanh would need at least 21 epochs
    assert activations.speedup(None, None, 20) == (None, False)


def test_plot_activation_functions_draws_each_function_and_its_slope():
    fig = activations.plot_activation_functions(("relu", "tanh"))
    value_ax, slope_ax = fig.axes
    assert [line.get_label() for line in value_ax.get_lines()][:2] == ["relu", "tanh"]
    relu_slope = slope_ax.get_lines()[0]
    x, slope = relu_slope.get_xdata(), relu_slope.get_ydata()
    assert np.all(slope[x > 0] == 1) and np.all(slope[x < 0] == 0)
    with pytest.raises(ValueError, match="Unknown activation.*gelu"):
        activations.plot_activation_functions(("gelu",))


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
torch = pytest.importorskip("torch")


def brightness_set(n: int = 256, size: int = 16, seed: int = 0) -> ImageSet:
    """A learnable 2-class set: class 1 images are brighter than class 0 images, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int64)
    base = np.where(labels == 1, 170, 85)[:, None, None, None]
    images = np.clip(base + rng.normal(0, 40, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return ImageSet(images, labels, ("dark", "bright"), "brightness train")


def test_relu_vs_tanh_trains_both_from_the_same_start_and_measures_the_ratio():
    train = brightness_set(n=128)
    result = activations.relu_vs_tanh(train, epochs=3, batch_size=32, lr=0.05, filters=(4, 4, 8))
    assert set(result.histories) == {"relu", "tanh"}
    for name, h in result.histories.items():
        assert h.label == name and len(h["error"]) == 3
        assert h["error"] == pytest.approx([1 - a for a in h["accuracy"]])
    # The task is easy: ReLU gets below 25% training error within 3 epochs.
    assert result.epochs_to_target["relu"] is not None
    assert result.epochs_to_target == {n: activations.epochs_to_error(h) for n, h in result.histories.items()}
    expected = activations.speedup(result.epochs_to_target["relu"], result.epochs_to_target["tanh"], 3)
    assert (result.ratio, result.lower_bound) == expected
    assert result.images_per_epoch == 128
    assert "relu:" in result.summary() and "tanh:" in result.summary()
    fig = activations.plot_training_error(result)
    assert "ReLU vs tanh" in fig.axes[0].get_title()


def test_relu_vs_tanh_repeats_exactly_with_the_same_seed():
    train = brightness_set(n=48)
    a = activations.relu_vs_tanh(train, epochs=1, batch_size=16, filters=(2, 2, 4))
    b = activations.relu_vs_tanh(train, epochs=1, batch_size=16, filters=(2, 2, 4))
    for name in ("relu", "tanh"):
        assert a.histories[name]["loss"] == b.histories[name]["loss"]


def test_each_network_gets_its_own_learning_rate_and_can_stop_at_the_target():
    train = brightness_set(n=128)
    result = activations.relu_vs_tanh(train, epochs=4, batch_size=32, lr={"relu": 0.05, "tanh": 0.1},
                                      filters=(4, 4, 8), stop_at_target=True)
    assert {n: h.info["lr"] for n, h in result.histories.items()} == {"relu": 0.05, "tanh": 0.1}
    for name, h in result.histories.items():
        reached = result.epochs_to_target[name]
        # stopped right after the first epoch at or below the target, else trained every epoch
        assert len(h["error"]) == (reached if reached is not None else 4)
    with pytest.raises(ValueError, match="'relu' and 'tanh'"):
        activations.relu_vs_tanh(train, epochs=1, lr={"relu": 0.1})


def test_both_networks_start_from_the_same_weights_and_the_paper_initialization_is_gaussian():
    train = brightness_set(n=32)
    relu = activations.train_figure1_net(train, "relu", lr=0.0, epochs=1, batch_size=32, filters=(4, 4, 8))
    tanh = activations.train_figure1_net(train, "tanh", lr=0.0, epochs=1, batch_size=32, filters=(4, 4, 8))
    assert relu["loss"] != tanh["loss"]  # same weights (seeded), different activation
    model = activations._build(train, "tanh", seed=0, init_std=0.01, filters=(4, 4, 8))
    weights = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith("weight")])
    biases = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith("bias")])
    assert abs(weights.std().item() - 0.01) < 0.001 and torch.all(biases == 0)


def test_learning_rate_grid_gives_every_rate_an_error_and_picks_the_lowest():
    train = brightness_set(n=96)
    grid = activations.learning_rate_grid(train, [0.001, 0.05, 1e6], batches=3, batch_size=32, filters=(4, 4, 8))
    assert set(grid) == {"relu", "tanh"} and all(list(errors) == [0.001, 0.05, 1e6] for errors in grid.values())
    assert all(0 <= e <= 1 for errors in grid.values() for e in errors.values())
    assert min(grid["relu"][1e6], grid["tanh"][1e6]) > 0.4  # far too large: no better than chance
    assert 1e6 not in activations.best_learning_rates(grid).values()
    assert activations.best_learning_rates({"relu": {0.01: 0.6, 0.03: 0.5}, "tanh": {0.01: 0.4, 0.03: 0.7}}) == \
        {"relu": 0.03, "tanh": 0.01}
