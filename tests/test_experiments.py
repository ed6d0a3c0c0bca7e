"""experiments: the ReLU-vs-tanh experiment (notebook 01) and the pre-training checks (notebook 04)."""

import math
import os

import numpy as np
import pytest

from alexnet_lab import architecture as arch
from alexnet_lab import experiments
from alexnet_lab.data import ImageSet
from alexnet_lab.history import History

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---------------------------------------------------------------------------
# Framework-free parts
# ---------------------------------------------------------------------------
def test_figure1_net_is_four_weighted_layers_with_the_asked_activation():
    input_shape, layers = experiments.describe_figure1_net("tanh")
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
        experiments.describe_figure1_net("gelu")
    with pytest.raises(ValueError, match="odd"):
        experiments.describe_figure1_net(kernel=4)
    with pytest.raises(ValueError, match="too small"):
        experiments.describe_figure1_net(image_size=4)


def _history(errors):
    h = History("torch")
    for e in errors:
        h.append(accuracy=1 - e)
    return h


def test_epochs_to_error_counts_from_one_and_reads_accuracy_when_there_is_no_error():
    h = _history([0.8, 0.5, 0.25, 0.1])
    assert experiments.epochs_to_error(h, 0.25) == 3  # "at most" the target counts
    assert experiments.epochs_to_error(h, 0.05) is None
    h.metrics["error"] = [0.9, 0.2, 0.1, 0.1]  # an explicit error wins over 1 - accuracy
    assert experiments.epochs_to_error(h, 0.25) == 2
    with pytest.raises(ValueError, match="between 0 and 1"):
        experiments.epochs_to_error(h, 25)


def test_speedup_ratio_lower_bound_and_nothing():
    assert experiments.speedup(2, 12, 20) == (6.0, False)
    assert experiments.speedup(4, None, 20) == (21 / 4, True)  # tanh would need at least 21 epochs
    assert experiments.speedup(None, None, 20) == (None, False)


def test_images_scaled_twice_are_diagnosed():
    """Notebook 04's third failure: CIFAR-like uint8 images divided by 255 twice are nearly constant."""
    from alexnet_lab import checks

    images = np.random.default_rng(0).normal(120, 64, (8, 32, 32, 3)).clip(0, 255).astype(np.uint8)
    (finding,) = checks.check_inputs(images / 255.0 / 255.0)
    assert finding.severity == "error" and "scaled twice" in finding.message
    assert checks.check_inputs(images / 255.0)[0].severity != "error"


def test_memory_estimate_arithmetic():
    input_shape, layers = experiments.describe_figure1_net()
    rows = arch.compute_rows(input_shape, layers)
    t = arch.totals(rows)
    m = experiments.training_memory_estimate(rows, 8, input_shape=input_shape)
    assert m["weights"] == 4 * t["params"]
    assert m["optimizer"] == 3 * 4 * t["params"]
    assert m["activations"] == 8 * 4 * (t["activations"] + 32 * 32 * 3)
    assert m["total"] == m["optimizer"] + m["activations"]
    assert experiments.training_memory_estimate(rows, 16)["activations"] == 16 * 4 * t["activations"]
    with pytest.raises(ValueError, match="batch_size"):
        experiments.training_memory_estimate(rows, 0)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from alexnet_lab import torch_models  # noqa: E402


def brightness_set(n: int = 256, size: int = 16, seed: int = 0) -> ImageSet:
    """A learnable 2-class set: class 1 images are brighter than class 0 images, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int64)
    base = np.where(labels == 1, 170, 85)[:, None, None, None]
    images = np.clip(base + rng.normal(0, 40, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return ImageSet(images, labels, ("dark", "bright"), "brightness train")


def test_relu_vs_tanh_trains_both_from_the_same_start_and_measures_the_ratio():
    train = brightness_set(n=128)
    result = experiments.relu_vs_tanh(train, epochs=3, batch_size=32, lr=0.05, filters=(4, 4, 8))
    assert set(result.histories) == {"relu", "tanh"}
    for name, h in result.histories.items():
        assert h.label == name and len(h["error"]) == 3
        assert h["error"] == pytest.approx([1 - a for a in h["accuracy"]])
    # The task is easy: ReLU gets below 25% training error within 3 epochs.
    assert result.epochs_to_target["relu"] is not None
    assert result.epochs_to_target == {n: experiments.epochs_to_error(h) for n, h in result.histories.items()}
    expected = experiments.speedup(result.epochs_to_target["relu"], result.epochs_to_target["tanh"], 3)
    assert (result.ratio, result.lower_bound) == expected
    assert result.images_per_epoch == 128
    assert "relu:" in result.summary() and "tanh:" in result.summary()
    fig = experiments.plot_training_error(result)
    assert "ReLU vs tanh" in fig.axes[0].get_title()


def test_relu_vs_tanh_repeats_exactly_with_the_same_seed():
    train = brightness_set(n=48)
    a = experiments.relu_vs_tanh(train, epochs=1, batch_size=16, filters=(2, 2, 4))
    b = experiments.relu_vs_tanh(train, epochs=1, batch_size=16, filters=(2, 2, 4))
    for name in ("relu", "tanh"):
        assert a.histories[name]["loss"] == b.histories[name]["loss"]


def tiny_torch_model():
    layers = [arch.Conv("conv1", 4, 3), arch.Activation("relu1"), arch.Flatten("flatten"), arch.Dense("fc", 3)]
    return torch_models.build((8, 8, 2), layers, name="tiny"), layers


def test_saved_for_backward_counts_the_input_and_the_relu_output_once():
    model, _ = tiny_torch_model()
    saved = experiments.saved_for_backward_bytes(model, 5)
    # conv1 keeps its input (5·2·8·8 floats); ReLU keeps its output (5·4·6·6), which Flatten and the
    # dense layer share (a view): counted once. The weights are not counted.
    assert saved == 4 * (5 * 2 * 8 * 8 + 5 * 4 * 6 * 6)
    assert experiments.saved_for_backward_bytes(model, 10) == 2 * saved


def test_throughput_and_batch_size_costs_torch():
    model, layers = tiny_torch_model()
    speed = experiments.training_throughput(model, 4, steps=2)
    assert speed > 0 and math.isfinite(speed)
    rows = arch.compute_rows((8, 8, 2), layers)
    table = experiments.batch_size_costs(model, None, (2, 4), steps=1, rows=rows)
    assert [e["batch_size"] for e in table] == [2, 4]
    assert table[1]["saved_activation_bytes"] == 2 * table[0]["saved_activation_bytes"]
    assert table[1]["estimate_activation_bytes"] == 2 * table[0]["estimate_activation_bytes"]
    assert all(e["torch_images_per_s"] > 0 and "keras_images_per_s" not in e for e in table)
    fig = experiments.plot_batch_size_costs(table, title="tiny")
    assert fig.axes[0].get_xlabel() == "batch size" and fig.axes[1].get_ylabel() == "MiB"
    with pytest.raises(ValueError, match="needs a PyTorch model"):
        experiments.batch_size_costs(None, None)


def test_reinitialize_and_vanishing_activations_torch():
    torch.manual_seed(0)
    model = torch_models.alexnet("cifar10")
    x = torch.randn(4, 3, 32, 32)
    healthy = experiments.activation_stds(model, x)
    assert [n for n, _ in healthy] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert all(0.05 < s < 20 for _, s in healthy), healthy  # He initialization keeps the spread near 1
    experiments.reinitialize(model, 1e-4)
    assert model.conv1.weight.std().item() == pytest.approx(1e-4, rel=0.05)
    assert model.fc8.bias.abs().max().item() == 0
    tiny = experiments.activation_stds(model, x)
    stds = [s for _, s in tiny]
    assert all(b < a for a, b in zip(stds, stds[1:])), "with tiny weights every layer shrinks the signal"
    assert stds[-1] < 1e-20
    fig = experiments.plot_activation_stds({"He": healthy, "N(0, 1e-4)": tiny})
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="positive"):
        experiments.reinitialize(model, 0)


def test_scale_output_layer_brings_the_first_loss_to_ln_classes():
    torch.manual_seed(0)
    model = torch_models.alexnet("cifar10").eval()
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    before = torch.nn.functional.cross_entropy(model(x), y).item()
    weights, fc7 = model.fc8.weight.detach().clone(), model.fc7.weight.detach().clone()
    experiments.scale_output_layer(model, 0.01)
    assert torch.allclose(model.fc8.weight, 0.01 * weights)
    assert torch.equal(model.fc7.weight, fc7), "only the last layer changes"
    after = torch.nn.functional.cross_entropy(model(x), y).item()
    assert abs(after - math.log(10)) < 0.05 < abs(before - math.log(10)), (before, after)
    with pytest.raises(ValueError, match="positive"):
        experiments.scale_output_layer(model, -1)


def test_plot_against_healthy_marks_ln_classes_and_nan():
    healthy, broken = History("torch", "healthy"), History("torch", "lr too high")
    for loss in (2.0, 1.5):
        healthy.append(loss=loss, accuracy=0.4)
    for loss in (40.0, float("nan")):
        broken.append(loss=loss, accuracy=0.1)
    fig = experiments.plot_against_healthy(healthy, broken)
    loss_ax = fig.axes[0]
    texts = [t.get_text() for t in loss_ax.texts]
    assert any("NaN" in t and "epoch 2" in t for t in texts), texts
    assert any("ln 10" in text.get_text() for text in loss_ax.get_legend().get_texts())


# ---------------------------------------------------------------------------
# Keras: the same measurements give the same numbers
# ---------------------------------------------------------------------------
def test_keras_activation_stds_match_torch_after_transfer_and_reinitialize():
    pytest.importorskip("keras")
    from alexnet_lab import keras_models, transfer

    layers = [arch.Conv("conv1", 4, 3), arch.Activation("relu1"), arch.MaxPool("pool1", 2, 2),
              arch.Flatten("flatten"), arch.Dense("fc", 3)]
    t_model = torch_models.build((8, 8, 2), layers, name="tiny")
    k_model = keras_models.build((8, 8, 2), layers, name="tiny")
    transfer.torch_to_keras(t_model, k_model)
    x = np.random.default_rng(0).standard_normal((6, 8, 8, 2)).astype(np.float32)
    k_stats = experiments.activation_stds(k_model, x)
    t_stats = experiments.activation_stds(t_model, x.transpose(0, 3, 1, 2))
    assert [n for n, _ in k_stats] == [n for n, _ in t_stats] == ["conv1", "fc"]
    assert [s for _, s in k_stats] == pytest.approx([s for _, s in t_stats], rel=1e-4)

    experiments.reinitialize(k_model, 0.01, seed=1)
    kernel = np.asarray(k_model.get_layer("fc").kernel)
    assert kernel.std() == pytest.approx(0.01, rel=0.3) and not np.asarray(k_model.get_layer("fc").bias).any()
    assert experiments.training_throughput(k_model, 4, steps=1) > 0

    fc = k_model.get_layer("fc")
    kernel = np.asarray(fc.kernel)
    experiments.scale_output_layer(k_model, 0.5)
    assert np.allclose(np.asarray(fc.kernel), 0.5 * kernel)
