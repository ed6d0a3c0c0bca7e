"""smoke_test: the failure modes of notebook 04 (badly scaled weights, vanishing signals) and their checks."""

import math
import os

import numpy as np
import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.core.history import History
from alexnet_lab.teaching import smoke_test

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---------------------------------------------------------------------------
# Framework-free parts
# ---------------------------------------------------------------------------
def test_images_scaled_twice_are_diagnosed():
    """Notebook 04's third failure: CIFAR-like uint8 images divided by 255 twice are nearly constant."""
    from alexnet_lab.grading import checks

    images = np.random.default_rng(0).normal(120, 64, (8, 32, 32, 3)).clip(0, 255).astype(np.uint8)
    (finding,) = checks.check_inputs(images / 255.0 / 255.0)
    assert finding.severity == "error" and "scaled twice" in finding.message
    assert checks.check_inputs(images / 255.0)[0].severity != "error"


def test_plot_against_healthy_marks_ln_classes_and_nan():
    healthy, broken = History("torch", "healthy"), History("torch", "lr too high")
    for loss in (2.0, 1.5):
        healthy.append(loss=loss, accuracy=0.4)
    for loss in (40.0, float("nan")):
        broken.append(loss=loss, accuracy=0.1)
    fig = smoke_test.plot_against_healthy(healthy, broken)
    loss_ax = fig.axes[0]
    texts = [t.get_text() for t in loss_ax.texts]
    assert any("NaN" in t and "epoch 2" in t for t in texts), texts
    assert any("ln 10" in text.get_text() for text in loss_ax.get_legend().get_texts())


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from alexnet_lab.torch import models as torch_models  # noqa: E402


def test_reinitialize_and_vanishing_activations_torch():
    torch.manual_seed(0)
    model = torch_models.alexnet("cifar10")
    x = torch.randn(4, 3, 32, 32)
    healthy = smoke_test.activation_stds(model, x)
    assert model.training and model.fc6.training, "activation_stds runs in evaluation mode and restores the mode"
    assert [n for n, _ in healthy] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert all(0.05 < s < 20 for _, s in healthy[:-1]), healthy  # He initialization keeps the spread near 1
    assert healthy[-1][1] == 0, "fc8 starts at zero: every logit is 0"
    smoke_test.reinitialize(model, 1e-4)
    assert model.conv1.weight.std().item() == pytest.approx(1e-4, rel=0.05)
    assert model.fc8.bias.abs().max().item() == 0
    tiny = smoke_test.activation_stds(model, x)
    stds = [s for _, s in tiny]
    assert all(b < a for a, b in zip(stds, stds[1:])), "with tiny weights every layer shrinks the signal"
    assert stds[-1] < 1e-20
    fig = smoke_test.plot_activation_stds({"He": healthy, "N(0, 1e-4)": tiny})
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="positive"):
        smoke_test.reinitialize(model, 0)


def test_scale_output_layer_brings_the_first_loss_to_ln_classes():
    torch.manual_seed(0)
    model = torch_models.alexnet("cifar10").eval()
    torch.nn.init.kaiming_uniform_(model.fc8.weight, nonlinearity="relu")  # He, as the course's fc8 once was
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    before = torch.nn.functional.cross_entropy(model(x), y).item()
    weights, fc7 = model.fc8.weight.detach().clone(), model.fc7.weight.detach().clone()
    smoke_test.scale_output_layer(model, 0.01)
    assert torch.allclose(model.fc8.weight, 0.01 * weights)
    assert torch.equal(model.fc7.weight, fc7), "only the last layer changes"
    after = torch.nn.functional.cross_entropy(model(x), y).item()
    assert abs(after - math.log(10)) < 0.05 < abs(before - math.log(10)), (before, after)
    with pytest.raises(ValueError, match="positive"):
        smoke_test.scale_output_layer(model, -1)


# ---------------------------------------------------------------------------
# Keras: the same measurements give the same numbers
# ---------------------------------------------------------------------------
def test_keras_activation_stds_match_torch_after_transfer_and_reinitialize():
    pytest.importorskip("keras")
    from alexnet_lab.keras import models as keras_models
    from alexnet_lab.teaching import transfer

    layers = [arch.Conv("conv1", 4, 3), arch.Activation("relu1"), arch.MaxPool("pool1", 2, 2),
              arch.Flatten("flatten"), arch.Dense("fc", 3)]
    t_model = torch_models.build((8, 8, 2), layers, name="tiny")
    k_model = keras_models.build((8, 8, 2), layers, name="tiny")
    transfer.torch_to_keras(t_model, k_model)
    x = np.random.default_rng(0).standard_normal((6, 8, 8, 2)).astype(np.float32)
    k_stats = smoke_test.activation_stds(k_model, x)
    t_stats = smoke_test.activation_stds(t_model, x.transpose(0, 3, 1, 2))
    assert [n for n, _ in k_stats] == [n for n, _ in t_stats] == ["conv1", "fc"]
    assert [s for _, s in k_stats] == pytest.approx([s for _, s in t_stats], rel=1e-4)

    smoke_test.reinitialize(k_model, 0.01, seed=1)
    kernel = np.asarray(k_model.get_layer("fc").kernel)
    assert kernel.std() == pytest.approx(0.01, rel=0.3) and not np.asarray(k_model.get_layer("fc").bias).any()

    fc = k_model.get_layer("fc")
    kernel = np.asarray(fc.kernel)
    smoke_test.scale_output_layer(k_model, 0.5)
    assert np.allclose(np.asarray(fc.kernel), 0.5 * kernel)


def test_dead_relus_counts_the_units_that_output_zero_for_every_image_in_both_frameworks():
    """Notebook 04's diagnosis of a stuck network: the share of each ReLU's units that are 0 for the whole batch."""
    import keras

    from alexnet_lab.keras import models as keras_models
    from alexnet_lab.teaching import transfer

    torch.manual_seed(0)
    model = torch_models.alexnet("compact")
    x = torch.randn(8, 3, 32, 32)
    healthy = smoke_test.dead_relus(model, x)
    assert [n for n, _ in healthy] == ["relu1", "relu2", "relu3", "relu4", "relu5", "relu6", "relu7"]
    assert dict(healthy)["relu1"] == 0 and all(0 <= f < 1 for _, f in healthy), healthy
    with torch.no_grad():
        model.conv1.bias[:12] = -1e4  # 12 of conv1's 96 channels can never be positive
        model.fc7.bias[:124] = -1e4  # and a quarter of fc7's 496 units
    killed = dict(smoke_test.dead_relus(model, x))
    assert killed["relu1"] == pytest.approx(12 / 96) and killed["relu7"] >= 124 / 496, killed

    k_model = keras_models.alexnet("compact")
    transfer.torch_to_keras(model, k_model)
    k_killed = dict(smoke_test.dead_relus(k_model, x.permute(0, 2, 3, 1).numpy()))
    assert k_killed == pytest.approx(killed), "the same weights and images: the same dead units in Keras"
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu", name="hidden"),
                              keras.layers.Dense(2, name="out")])
    plain.layers[0].set_weights([np.zeros((4, 3), "float32"), np.array([1.0, -1.0, -1.0], "float32")])
    assert smoke_test.dead_relus(plain, np.ones((5, 4), "float32")) == [("hidden", pytest.approx(2 / 3))]
