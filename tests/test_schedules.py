"""The one-cycle schedule, Nesterov momentum and label smoothing: the same in the core formula, PyTorch and Keras."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alexnet_lab.core.schedules import one_cycle_lr

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from alexnet_lab.keras import models as keras_models  # noqa: E402
from alexnet_lab.keras import optim as keras_optim  # noqa: E402
from alexnet_lab.keras import training as keras_training  # noqa: E402
from alexnet_lab.torch import models as torch_models  # noqa: E402
from alexnet_lab.torch import optim as torch_optim  # noqa: E402
from alexnet_lab.torch import training as torch_training  # noqa: E402


@pytest.mark.parametrize(("total", "pct"), [(100, 0.25), (7, 0.3), (1955, 0.25), (8, 0.5)])
def test_the_formula_is_pytorchs_one_cycle(total, pct):
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=total, pct_start=pct,
                                                    cycle_momentum=False)
    for step in range(total):
        assert one_cycle_lr(step, total, 0.1, pct_start=pct) == pytest.approx(optimizer.param_groups[0]["lr"],
                                                                              rel=1e-9)
        optimizer.step()
        if step < total - 1:
            reference.step()
    assert one_cycle_lr(0, total, 0.1) == pytest.approx(0.1 / 25)
    assert one_cycle_lr(total - 1, total, 0.1) == pytest.approx(0.1 / 25 / 1e4)
    with pytest.raises(ValueError, match="Received: total_steps=1"):
        one_cycle_lr(0, 1, 0.1)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, n)


STEPS, EPOCHS, PEAK = 4, 3, 0.05  # 64 images in batches of 16


def _expected_epoch_lrs(epochs=EPOCHS):
    return [one_cycle_lr(e * STEPS, EPOCHS * STEPS, PEAK) for e in range(epochs)]


def test_torch_fit_steps_one_cycle_after_every_batch_and_resumes_it(tmp_path):
    x, y = _data()
    arrays = (x.transpose(0, 3, 1, 2).copy(), y)
    settings = dict(lr=PEAK, schedule="onecycle", nesterov=True, label_smoothing=0.1, batch_size=16,
                    progress=False, verbose=0, mixed_precision=False)
    torch.manual_seed(0)
    history = torch_training.fit(torch_models.lenet5(), arrays, epochs=EPOCHS, **settings)
    np.testing.assert_allclose(history["lr"], _expected_epoch_lrs(), rtol=1e-9)
    assert history.info["nesterov"] and history.info["label_smoothing"] == 0.1

    # A run stopped after 2 epochs and resumed for 3 continues with the 3-epoch schedule at step 8.
    model = torch_models.lenet5()
    torch_training.fit(model, arrays, epochs=2, checkpoint_dir=tmp_path, **settings)
    resumed = torch_training.fit(model, arrays, epochs=EPOCHS, checkpoint_dir=tmp_path, resume=True, **settings)
    assert resumed["lr"][-1] == pytest.approx(_expected_epoch_lrs()[-1], rel=1e-9)


def test_keras_fit_steps_one_cycle_after_every_batch_and_resumes_it(tmp_path):
    x, y = _data()
    settings = dict(lr=PEAK, schedule="onecycle", nesterov=True, label_smoothing=0.1, batch_size=16,
                    progress=False, verbose=0)
    model = keras_models.lenet5()
    history = keras_training.fit(model, (x, y), epochs=EPOCHS, **settings)
    np.testing.assert_allclose(history["lr"], _expected_epoch_lrs(), rtol=1e-6)
    final = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert final == pytest.approx(one_cycle_lr(EPOCHS * STEPS - 1, EPOCHS * STEPS, PEAK), rel=1e-6)
    assert model.optimizer.nesterov and history.info["label_smoothing"] == 0.1

    # A run stopped after 2 epochs and resumed for 3 continues with the 3-epoch schedule at step 8.
    model = keras_models.lenet5()
    keras_training.fit(model, (x, y), epochs=2, checkpoint_dir=tmp_path, **settings)
    resumed = keras_training.fit(keras_models.lenet5(), (x, y), epochs=EPOCHS, checkpoint_dir=tmp_path, resume=True,
                                 **settings)
    assert resumed["lr"][-1] == pytest.approx(_expected_epoch_lrs()[-1], rel=1e-6)


def test_label_smoothing_is_the_same_loss_in_both_frameworks():
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], np.float32)
    labels = np.array([0, 1])
    eps, classes = 0.1, 3
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    target = np.full((2, classes), eps / classes)
    target[np.arange(2), labels] += 1 - eps
    expected = float(-(target * log_p).sum(1).mean())
    torch_loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                                   label_smoothing=eps).item()
    keras_loss = float(keras_training.SmoothedSparseCrossentropy(eps)(labels, logits))
    assert torch_loss == pytest.approx(expected, rel=1e-6)
    assert keras_loss == pytest.approx(expected, rel=1e-6)
    assert float(keras_training.SmoothedSparseCrossentropy(0.0)(labels, logits)) == pytest.approx(
        float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)), rel=1e-6)


def test_fit_trains_on_the_smoothed_loss_and_validates_on_the_plain_one_in_both_frameworks():
    """A model whose logits are a fixed bias (zero weights, lr=0): fit's losses can be computed by hand."""
    bias = np.array([2.0, -1.0, 0.5], np.float32)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 28, 28, 1)).astype(np.float32), np.tile([0, 1, 1, 2], 3)
    eps = 0.2
    log_p = bias - np.log(np.exp(bias).sum())
    plain = float(-log_p[y].mean())
    smoothed = float(-((1 - eps) * log_p[y] + eps * log_p.mean()).mean())
    settings = dict(epochs=1, lr=0.0, weight_decay=0.0, label_smoothing=eps, batch_size=12, progress=False, verbose=0)

    t_model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))
    with torch.no_grad():
        t_model[1].weight.zero_()
        t_model[1].bias.copy_(torch.from_numpy(bias))
    t_data = (x.transpose(0, 3, 1, 2).copy(), y)
    t = torch_training.fit(t_model, t_data, t_data, mixed_precision=False, **settings)
    k_model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(3, kernel_initializer="zeros",
                                                   bias_initializer=keras.initializers.Constant(bias))])
    k = keras_training.fit(k_model, (x, y), (x, y), **settings)
    for history in (t, k):
        assert history["loss"][0] == pytest.approx(smoothed, rel=1e-5), history.framework
        assert history["val_loss"][0] == pytest.approx(plain, rel=1e-5), history.framework
        assert history["accuracy"][0] == history["val_accuracy"][0] == pytest.approx(3 / 12)  # class 0 wins
        assert history.info["label_smoothing"] == eps
    assert smoothed != pytest.approx(plain, rel=1e-2)  # the test tells the two losses apart


def test_nesterov_steps_agree_between_frameworks():
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    target = np.array([0.3, 0.1, -0.4], np.float32)
    t_w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    t_model = torch.nn.Module()
    t_model.w = t_w
    t_opt = torch_optim.make_optimizer(t_model, "sgd", lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=True)
    assert t_opt.param_groups[0]["nesterov"]
    k_w = keras.Variable(w0.copy())
    k_opt = keras_optim.make_optimizer(None, "sgd", lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=True)
    for _ in range(3):
        t_opt.zero_grad()
        ((t_w - torch.from_numpy(target)) ** 2).sum().backward()
        t_opt.step()
        grad = 2 * (np.asarray(k_w) - target)
        k_opt.apply([keras.ops.convert_to_tensor(grad)], [k_w])
    np.testing.assert_allclose(np.asarray(k_w), t_w.detach().numpy(), atol=1e-6)
    # Without Nesterov the third step lands elsewhere: the test can tell the two apart.
    plain = torch.nn.Module()
    plain.w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    p_opt = torch_optim.make_optimizer(plain, "sgd", lr=0.1, momentum=0.9, weight_decay=0.0)
    for _ in range(3):
        p_opt.zero_grad()
        ((plain.w - torch.from_numpy(target)) ** 2).sum().backward()
        p_opt.step()
    assert not np.allclose(plain.w.detach().numpy(), t_w.detach().numpy(), atol=1e-3)


def test_bad_settings_say_what_was_received():
    model = torch_models.lenet5()
    for make in (lambda: torch_optim.make_optimizer(model, "adam", nesterov=True),
                 lambda: keras_optim.make_optimizer(None, "adam", nesterov=True)):
        with pytest.raises(ValueError, match="Received: name='adam'"):
            make()
    optimizer = torch_optim.make_optimizer(model)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        torch_optim.make_scheduler(optimizer, "onecycle", epochs=3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        keras_optim.make_scheduler(keras_optim.make_optimizer(None), "onecycle", epochs=3)
    x, y = _data(16)
    with pytest.raises(ValueError, match="Received: label_smoothing=1.0"):
        torch_training.fit(model, (x.transpose(0, 3, 1, 2).copy(), y), epochs=1, label_smoothing=1.0, verbose=0)
    with pytest.raises(ValueError, match="Received: label_smoothing=-0.1"):
        keras_training.fit(keras_models.lenet5(), (x, y), epochs=1, label_smoothing=-0.1, verbose=0)
    assert math.isfinite(one_cycle_lr(10**6, 100, 0.1))  # past the end: the last rate
