"""The NumPy BatchNorm of alexnet_lab.teaching.norms against hand arithmetic, Keras and PyTorch; the small convnet."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.teaching import norms


def _batch(shape=(8, 5, 5, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=2.0, scale=3.0, size=shape)


def test_training_mode_by_hand():
    # One channel, four values: mean 2.5, biased variance 1.25, unbiased 5/3.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1)
    bn = norms.NumpyBatchNorm(1, epsilon=1e-5, momentum=0.1)
    y = bn(x)
    expected = (x - 2.5) / np.sqrt(1.25 + 1e-5)
    np.testing.assert_allclose(y, expected)
    np.testing.assert_allclose(bn.running_mean, [0.9 * 0 + 0.1 * 2.5])
    np.testing.assert_allclose(bn.running_var, [0.9 * 1 + 0.1 * 5 / 3])


def test_biased_running_variance_option():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1)
    bn = norms.NumpyBatchNorm(1, momentum=1.0, unbiased_running_var=False)
    bn(x)
    np.testing.assert_allclose(bn.running_var, [1.25])
    np.testing.assert_allclose(bn.running_mean, [2.5])


def test_output_is_normalized_per_channel_and_scaled():
    x = _batch()
    bn = norms.NumpyBatchNorm(3)
    bn.gamma = np.array([1.0, 2.0, 0.5])
    bn.beta = np.array([0.0, -1.0, 3.0])
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), bn.beta, atol=1e-10)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), bn.gamma, rtol=1e-5)


def test_inference_mode_uses_running_statistics_and_updates_nothing():
    x = _batch()
    bn = norms.NumpyBatchNorm(3)
    bn.running_mean = np.array([1.0, 2.0, 3.0])
    bn.running_var = np.array([4.0, 1.0, 0.25])
    y = bn.eval()(x)
    np.testing.assert_allclose(y, (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5))
    np.testing.assert_allclose(bn.running_mean, [1.0, 2.0, 3.0])
    # training= overrides the mode for one call only
    bn(x, training=True)
    assert not bn.training
    assert not np.allclose(bn.running_mean, [1.0, 2.0, 3.0])


def test_channels_first_axis_gives_the_transposed_result():
    x = _batch()
    last = norms.NumpyBatchNorm(3)(x)
    first = norms.NumpyBatchNorm(3, axis=1)(x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(first, last.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("kwargs", "x", "message"),
    [
        ({"channels": 0}, None, "positive integer"),
        ({"channels": 3, "momentum": 0.99 + 1}, None, "Keras momentum"),
        ({"channels": 3, "epsilon": 0.0}, None, "epsilon"),
        ({"channels": 4}, np.zeros((2, 5, 5, 3)), "axis=1"),
        ({"channels": 3}, np.zeros(3), "needs a batch"),
        ({"channels": 3}, np.zeros((1, 3)), "more than one value"),
    ],
)
def test_errors_say_what_to_do(kwargs, x, message):
    with pytest.raises(ValueError, match=message):
        bn = norms.NumpyBatchNorm(**kwargs)
        bn(x)


def test_against_pytorch_batchnorm2d():
    torch = pytest.importorskip("torch")
    x = _batch((6, 4, 4, 3))
    mine = norms.NumpyBatchNorm(3, axis=1)
    theirs = torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1).double()
    for step in range(3):
        xb = x.transpose(0, 3, 1, 2) * (step + 1)
        y_mine = mine(xb)
        y_theirs = theirs.train()(torch.from_numpy(xb)).detach().numpy()
        np.testing.assert_allclose(y_mine, y_theirs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mine.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(mine.running_var, theirs.running_var.numpy(), rtol=1e-12)
    xt = x.transpose(0, 3, 1, 2)
    with torch.no_grad():
        np.testing.assert_allclose(mine.eval()(xt), theirs.eval()(torch.from_numpy(xt)).numpy(), rtol=1e-10)
    # With the biased variance the running estimate would NOT match PyTorch's.
    biased = norms.NumpyBatchNorm(3, axis=1, unbiased_running_var=False)
    biased(xt)
    fresh = torch.nn.BatchNorm2d(3).double().train()
    fresh(torch.from_numpy(xt))
    assert not np.allclose(biased.running_var, fresh.running_var.numpy(), rtol=1e-6)


def test_against_keras_batchnormalization():
    keras = pytest.importorskip("keras")
    x = _batch((6, 4, 4, 3)).astype("float32")
    mine = norms.NumpyBatchNorm(3, momentum=0.1, unbiased_running_var=False)
    layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    for step in range(3):
        xb = x * (step + 1)
        y_mine = mine(xb)
        y_keras = keras.ops.convert_to_numpy(layer(xb, training=True))
        np.testing.assert_allclose(y_mine, y_keras, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mine.running_mean, layer.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(mine.running_var, layer.moving_variance.numpy(), rtol=1e-5)
    y_keras = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(mine.eval()(x), y_keras, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("placement", list(norms.PLACEMENTS))
def test_small_convnet_placements(placement):
    input_shape, layers = norms.describe_small_convnet(placement)
    rows = arch.compute_rows(input_shape, layers)
    names = [r.name for r in rows]
    assert rows[-1].output_shape == (10,)
    assert rows[names.index("pool3")].output_shape == (4, 4, 128)
    kinds = [type(layer).__name__ for layer in layers]
    if placement == "none":
        assert "BatchNorm" not in kinds and "LRN" not in kinds
    elif placement == "lrn":
        assert kinds.count("LRN") == 3
    else:
        assert kinds.count("BatchNorm") == 3
        bn = kinds.index("BatchNorm")
        before = {"bn_relu": "Conv", "relu_bn": "Activation", "pool_bn": "MaxPool"}[placement]
        assert kinds[bn - 1] == before
    conv1 = layers[0]
    assert conv1.bias == (placement != "bn_relu")


def test_small_convnet_parameters_by_hand():
    rows = arch.compute_rows(*norms.describe_small_convnet("none"))
    expected = (3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128) \
        + (4 * 4 * 128 * 256 + 256) + (256 * 10 + 10)
    assert arch.totals(rows)["params"] == expected


def test_small_convnet_errors():
    with pytest.raises(ValueError, match="placement must be one of"):
        norms.describe_small_convnet("bn_everywhere")
    with pytest.raises(ValueError, match="at least 16×16"):
        norms.describe_small_convnet(filters=(8, 8, 8, 8), image_size=8)


def test_lrn_scale_matches_the_formula():
    # Small activations: LRN only divides by k ** beta; large ones are damped much more.
    np.testing.assert_allclose(norms.lrn_scale(0.0, 1), 2.0 ** -0.75)
    a = 100.0
    np.testing.assert_allclose(norms.lrn_scale(a, 5), 1 / (2 + 1e-4 * 5 * a * a) ** 0.75)
    assert norms.lrn_scale(a, 5) < norms.lrn_scale(a, 1) < norms.lrn_scale(0.0, 1)
    with pytest.raises(ValueError, match="counts the channel itself"):
        norms.lrn_scale(a, 6)


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_plot_lrn_response_has_labelled_curves():
    fig = norms.plot_lrn_response()
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 4  # three curves and the k^-beta line
    assert "b / a" in ax.get_ylabel() and "activation" in ax.get_xlabel()
    assert "α=0.0001" in ax.get_title()
    curve = ax.get_lines()[0].get_ydata()
    assert curve[0] == pytest.approx(2 ** -0.75) and curve[-1] < curve[0]


def test_plot_placements_draws_each_block():
    fig = norms.plot_placements(["bn_relu", "pool_bn"])
    texts = _texts(fig)
    assert texts.count("BN") == 2 and "conv\n(no bias)" in texts and texts.count("pool") == 2
    assert any(t.startswith("pool_bn:") for t in texts)
    with pytest.raises(ValueError, match="placements must be"):
        norms.plot_placements(["everywhere"])


def test_plot_lr_sweep_panels_and_final_values():
    from alexnet_lab.core.history import History

    runs = []
    for framework in ("torch", "keras"):
        for label, base in (("BatchNorm", 0.5), ("none", 0.2)):
            for lr in (0.01, 0.1):
                h = History(framework, label, info={"lr": lr})
                for epoch in range(3):
                    h.append(val_accuracy=base + lr + 0.01 * epoch)
                runs.append(h)
    fig = norms.plot_lr_sweep(runs, ylabel="test accuracy", chance=0.1)
    panels = fig.axes
    assert [ax.get_title() for ax in panels[:2]] == ["learning rate 0.01", "learning rate 0.1"]
    assert len(panels[0].get_lines()) == 5  # two labels × two frameworks, and the chance line
    final = panels[-1]
    assert final.get_xscale() == "log" and "test accuracy" in final.get_title()
    lines = {line.get_label(): list(line.get_ydata()) for line in final.get_lines() if not line.get_label().startswith("_")}
    assert lines["BatchNorm (Keras)"] == pytest.approx([0.53, 0.62])
    assert lines["none (PyTorch)"] == pytest.approx([0.23, 0.32])
    assert "--" in {line.get_linestyle() for line in final.get_lines()}
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "BatchNorm (PyTorch)" in legend and "chance (10%)" in legend
    with pytest.raises(ValueError, match="info\\['lr'\\]"):
        norms.plot_lr_sweep([History("torch", "x")])
