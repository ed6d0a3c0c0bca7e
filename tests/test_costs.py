"""costs: the size of whole networks, and what a training step costs in time and memory (notebooks 01 and 04)."""

import math
import os

import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.teaching import activations, costs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---------------------------------------------------------------------------
# Framework-free parts
# ---------------------------------------------------------------------------
def test_plot_size_comparison_shows_each_total_and_the_ratio():
    tables = {"LeNet-5": arch.layer_table("lenet5"), "AlexNet": arch.layer_table("classic")}
    fig = costs.plot_size_comparison(tables)
    params_ax = fig.axes[0]
    heights = [bar.get_height() for bar in params_ax.patches]
    assert heights == [arch.totals(rows)["params"] for rows in tables.values()]
    ratio = heights[1] / heights[0]
    assert any(t.get_text().endswith(f"{ratio:,.0f}×") for t in params_ax.texts)
    memory = [bar.get_height() for bar in fig.axes[2].patches]
    assert memory == [4 * arch.totals(rows)["activations"] for rows in tables.values()]  # float32 bytes
    assert fig._suptitle.get_text() == "LeNet-5 vs AlexNet: the whole network, one image"


def test_memory_estimate_arithmetic():
    input_shape, layers = activations.describe_figure1_net()
    rows = arch.compute_rows(input_shape, layers)
    t = arch.totals(rows)
    m = costs.training_memory_estimate(rows, 8, input_shape=input_shape)
    assert m["weights"] == 4 * t["params"]
    assert m["optimizer"] == 3 * 4 * t["params"]
    assert m["activations"] == 8 * 4 * (t["activations"] + 32 * 32 * 3)
    assert m["total"] == m["optimizer"] + m["activations"]
    assert costs.training_memory_estimate(rows, 16)["activations"] == 16 * 4 * t["activations"]
    with pytest.raises(ValueError, match="batch_size"):
        costs.training_memory_estimate(rows, 0)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from alexnet_lab.torch import models as torch_models  # noqa: E402


def tiny_torch_model():
    layers = [arch.Conv("conv1", 4, 3), arch.Activation("relu1"), arch.Flatten("flatten"), arch.Dense("fc", 3)]
    return torch_models.build((8, 8, 2), layers, name="tiny"), layers


def test_saved_for_backward_counts_the_input_and_the_relu_output_once():
    model, _ = tiny_torch_model()
    saved = costs.saved_for_backward_bytes(model, 5)
    # conv1 keeps its input (5·2·8·8 floats); ReLU keeps its output (5·4·6·6), which Flatten and the
    # dense layer share (a view): counted once. The weights are not counted.
    assert saved == 4 * (5 * 2 * 8 * 8 + 5 * 4 * 6 * 6)
    assert costs.saved_for_backward_bytes(model, 10) == 2 * saved


def test_throughput_and_batch_size_costs_torch():
    model, layers = tiny_torch_model()
    model.eval()
    before = model.fc.weight.detach().clone()
    speed = costs.training_throughput(model, 4, steps=2)
    assert speed > 0 and math.isfinite(speed)
    assert not torch.equal(model.fc.weight, before), "full training steps: the weights change"
    assert not model.training, "the model's mode is restored"
    rows = arch.compute_rows((8, 8, 2), layers)
    table = costs.batch_size_costs(model, None, (2, 4), steps=1, rows=rows)
    assert [e["batch_size"] for e in table] == [2, 4]
    assert table[1]["saved_activation_bytes"] == 2 * table[0]["saved_activation_bytes"]
    assert table[1]["estimate_activation_bytes"] == 2 * table[0]["estimate_activation_bytes"]
    assert all(e["torch_images_per_s"] > 0 and "keras_images_per_s" not in e for e in table)
    fig = costs.plot_batch_size_costs(table, title="tiny")
    assert fig.axes[0].get_xlabel() == "batch size" and fig.axes[1].get_ylabel() == "MiB"
    with pytest.raises(ValueError, match="needs a PyTorch model"):
        costs.batch_size_costs(None, None)


def test_saved_for_backward_is_measured_in_training_mode_and_restores_the_mode():
    layers = [arch.Conv("conv1", 4, 3), arch.Activation("relu1"), arch.Flatten("flatten"), arch.Dropout("drop", 0.5),
              arch.Dense("fc", 3)]
    model = torch_models.build((8, 8, 2), layers, name="tiny").eval()
    saved = costs.saved_for_backward_bytes(model, 5)
    # In training mode dropout keeps its mask (a bool, or a float mask, per value), so more than without it.
    assert saved > 4 * (5 * 2 * 8 * 8 + 5 * 4 * 6 * 6)
    assert not model.training
    with pytest.raises(TypeError, match="Keras model or a PyTorch nn.Module"):
        costs.saved_for_backward_bytes(object(), 5)


def test_keras_throughput():
    pytest.importorskip("keras")
    from alexnet_lab.keras import models as keras_models

    layers = [arch.Conv("conv1", 4, 3), arch.Activation("relu1"), arch.Flatten("flatten"), arch.Dense("fc", 3)]
    model = keras_models.build((8, 8, 2), layers, name="tiny")
    speed = costs.training_throughput(model, 4, steps=1)
    assert speed > 0 and math.isfinite(speed)
