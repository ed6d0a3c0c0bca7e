"""torch training, optim, checkpoints: fit learns, schedules, early stopping, clipping, checkpoints, resume,
determinism, evaluate."""

import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import alexnet_lab
from alexnet_lab.core import hardware
from alexnet_lab.core.history import History, format_epoch
from alexnet_lab.core.schedules import one_cycle_lr
from alexnet_lab.torch import checkpoints as torch_checkpoints
from alexnet_lab.torch import models as torch_models
from alexnet_lab.torch import optim as torch_optim
from alexnet_lab.torch import training as torch_training

TIMING = ("images_per_s", "epoch_time_s")


def quadrants(n: int, seed: int, noise: float = 1.0, signal: float = 0.35):
    """A learnable 4-class task: the class is the quadrant of a 28×28 image that is brighter (NCHW float32)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, noise, (n, 1, 28, 28)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 0, r * 14:(r + 1) * 14, q * 14:(q + 1) * 14] += signal
    return torch.from_numpy(x), torch.from_numpy(y)


def small_net() -> nn.Module:
    """A tiny convnet with dropout (so the random generators matter), returning logits for 4 classes."""
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 8 * 8, 4))


def quiet(**kwargs):
    return {"progress": False, "verbose": 0, **kwargs}


@pytest.fixture(scope="module")
def data():
    return quadrants(192, seed=1), quadrants(96, seed=2)


def test_fit_learns_a_learnable_task_and_returns_the_history(data):
    train, val = data
    alexnet_lab.seed_everything(0, frameworks=("torch",))
    model = torch_models.lenet5(num_classes=4, activation="relu")
    before = torch_training.evaluate(model, val)
    history = torch_training.fit(model, train, val, epochs=4, lr=0.05, batch_size=32, label="lenet", **quiet())
    assert isinstance(history, History) and history.framework == "torch" and history.label == "lenet"
    assert set(history.metrics) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "images_per_s",
                                    "epoch_time_s"}
    assert all(len(v) == 4 for v in history.metrics.values())
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert before["accuracy"] < 0.45 and history["val_accuracy"][-1] > 0.8  # chance: 0.25
    assert history.info["device"].startswith("cpu") and history.info["seed"] == 0
    # "auto" precision: bfloat16 where the CPU computes it in hardware (AVX-512 BF16, AMX), float32 elsewhere.
    auto = "bfloat16" if hardware.cpu_has_fast_bf16() else "float32"
    assert history.info["precision"].startswith(auto) and history.info["channels_last"] is False
    assert all(v > 0 for v in history["images_per_s"])
    after = torch_training.evaluate(model, val, mixed_precision="auto")  # in the precision fit validated in
    assert after["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert after["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_two_seeded_cpu_runs_give_identical_histories_and_weights(data):
    train, val = data

    def run():
        alexnet_lab.seed_everything(123, frameworks=("torch",))
        model = small_net()
        history = torch_training.fit(model, train, val, epochs=3, lr=0.05, batch_size=32, **quiet())
        return history, model.state_dict()

    (h1, w1), (h2, w2) = run(), run()
    for key in h1.metrics:
        if key not in TIMING:
            assert h1[key] == h2[key], key  # exact equality, not approximate
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # ...and a different seed gives a different run, so the check above can fail.
    alexnet_lab.seed_everything(124, frameworks=("torch",))
    h3 = torch_training.fit(small_net(), train, val, epochs=3, lr=0.05, batch_size=32, **quiet())
    assert h3["loss"] != h1["loss"]


def test_plateau_divides_the_learning_rate_by_10_after_patience_epochs_without_improvement(data):
    train, val = data
    torch.manual_seed(0)
    # With a tiny learning rate the predictions do not change: validation accuracy stays put after epoch 1.
    history = torch_training.fit(small_net(), train, val, epochs=6, lr=1e-7, weight_decay=0, schedule="plateau",
                                 plateau_patience=2, batch_size=64, **quiet())
    assert len(set(history["val_accuracy"])) == 1  # the controlled metric: never improves after epoch 1
    # epoch 1 sets the best, epochs 2 and 3 do not improve -> epoch 4 trains with lr / 10, and so on.
    assert history["lr"] == pytest.approx([1e-7, 1e-7, 1e-7, 1e-8, 1e-8, 1e-9])


def test_plateau_scheduler_follows_a_scripted_validation_metric():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch_optim.make_scheduler(optimizer, "plateau", epochs=10, plateau_patience=2)
    lrs = []
    for accuracy in [0.50, 0.60, 0.60, 0.61, 0.61, 0.61, 0.70, 0.69]:
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step(accuracy)
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 1, 0.1, 0.1])


def test_cosine_and_step_schedules(data):
    train, _ = data
    kw = quiet(epochs=4, lr=0.1, batch_size=96, weight_decay=0)
    cosine = torch_training.fit(small_net(), train, schedule="cosine", **kw)
    assert cosine["lr"] == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    step = torch_training.fit(small_net(), train, schedule="step", step_every=2, **kw)
    assert step["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="schedule must be one of"):
        torch_training.fit(small_net(), train, schedule="exponential", **kw)


def _lrs_of_every_step(lrs: list):
    """A global optimizer hook that records the learning rate of every optimizer step (remove it afterwards)."""
    return register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: lrs.append(optimizer.param_groups[0]["lr"]))


class _Interrupted(Exception):
    pass


def test_one_cycle_is_stepped_after_every_batch_with_the_core_formula(data):
    train, val = data
    lrs = []
    hook = _lrs_of_every_step(lrs)
    try:  # 192 images in batches of 32, at most 5 of them: 5 steps per epoch, 15 in all
        history = torch_training.fit(small_net(), train, val, epochs=3, lr=0.2, batch_size=32, max_batches=5,
                                     schedule="onecycle", **quiet())
    finally:
        hook.remove()
    expected = [one_cycle_lr(step, 15, 0.2) for step in range(15)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert history["lr"] == pytest.approx(expected[::5], rel=1e-9)  # the rate of each epoch's first batch
    assert max(lrs) == pytest.approx(0.2, rel=0.05) and lrs[-1] == pytest.approx(0.2 / 25 / 1e4, rel=1e-9)
    assert history.info["schedule"] == "onecycle"
    scheduler = torch_optim.make_scheduler(torch_optim.make_optimizer(small_net(), lr=0.2), "onecycle", epochs=3,
                                           steps_per_epoch=5)
    assert "onecycle" in torch_optim.PER_BATCH and scheduler.get_last_lr() == pytest.approx([0.2 / 25])


def test_one_cycle_resumes_mid_schedule_exactly_like_an_uninterrupted_run(tmp_path, data):
    train, val = data

    def loader():
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=48, shuffle=True,
                                           generator=torch.Generator().manual_seed(3))

    class StopAfter2:
        def update(self, history):  # fit calls it after writing the epoch's checkpoint
            if history.epochs == 2:
                raise _Interrupted

    kw = quiet(lr=0.1, schedule="onecycle", nesterov=True, label_smoothing=0.1)
    alexnet_lab.seed_everything(5, frameworks=("torch",))
    whole_model, whole_lrs, resumed_lrs = small_net(), [], []
    hook = _lrs_of_every_step(whole_lrs)
    try:
        whole = torch_training.fit(whole_model, loader(), val, epochs=3, **kw)
    finally:
        hook.remove()
    alexnet_lab.seed_everything(5, frameworks=("torch",))
    with pytest.raises(_Interrupted):  # stopped after epoch 2 of 3, mid-schedule
        torch_training.fit(small_net(), loader(), val, epochs=3, checkpoint_dir=tmp_path, live=StopAfter2(), **kw)
    alexnet_lab.seed_everything(99, frameworks=("torch",))  # a new process would not be where the first run was
    resumed_model = small_net()
    hook = _lrs_of_every_step(resumed_lrs)
    try:
        resumed = torch_training.fit(resumed_model, loader(), val, epochs=3, checkpoint_dir=tmp_path, resume=True,
                                     **kw)
    finally:
        hook.remove()
    assert len(whole_lrs) == 3 * 4 and resumed_lrs == whole_lrs[8:]  # the third epoch: steps 8 to 11 of 12
    assert resumed.info["resumed_from_epoch"] == 2
    for key in whole.metrics:
        if key not in TIMING:
            assert resumed[key] == whole[key], key
    assert all(torch.equal(a, b) for a, b in zip(whole_model.state_dict().values(),
                                                 resumed_model.state_dict().values()))


def test_nesterov_and_label_smoothing_reach_the_optimizer_and_the_loss(data):
    train, _ = data
    model = small_net()
    optimizer = torch_optim.make_optimizer(model, "sgd", nesterov=True)
    assert optimizer.param_groups[0]["nesterov"] is True
    assert torch_optim.make_optimizer(model, "sgd").param_groups[0]["nesterov"] is False
    with pytest.raises(ValueError, match="nesterov=True needs the 'sgd' optimizer"):
        torch_optim.make_optimizer(model, "adam", nesterov=True)
    x, y = train[0][:16], train[1][:16]
    loss, logits = torch_training.train_step(model, x, y, torch.optim.SGD(model.parameters(), lr=0.0),
                                             label_smoothing=0.2)
    log_p = torch.log_softmax(logits, 1)
    expected = -(0.8 * log_p.gather(1, y[:, None]).squeeze(1) + 0.2 * log_p.mean(1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for wrong in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=f"Received: label_smoothing={wrong}"):
            torch_training.fit(small_net(), train, label_smoothing=wrong, **quiet())


def test_early_stopping_stops_when_validation_accuracy_stops_improving(data):
    train, val = data
    torch.manual_seed(0)
    history = torch_training.fit(small_net(), train, val, epochs=10, lr=1e-7, early_stopping=2, batch_size=64, **quiet())
    assert history.epochs == 3 and history.info["stopped_early_after_epoch"] == 3


def _global_norm(model: nn.Module) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()


def test_gradient_clipping_bounds_the_global_norm(data):
    train, _ = data

    def step_norms(clip):
        torch.manual_seed(0)
        model = small_net()
        norms = []
        # After each step: the gradients it stepped with (clipping rescales them in place, before the step).
        handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: norms.append(_global_norm(model)))
        try:
            torch_training.fit(model, train, epochs=1, lr=0.5, clip_grad_norm=clip, batch_size=32, **quiet())
        finally:
            handle.remove()
        return norms

    unclipped, clipped = step_norms(None), step_norms(0.05)
    assert len(clipped) == 6 and max(unclipped) > 0.05  # without clipping the norm does exceed the bound
    assert max(clipped) <= 0.05 * (1 + 1e-5)


def test_make_optimizer_clips_the_global_norm_like_keras():
    """The same numbers as the Keras test: a gradient of norm 5 clipped to norm 1 before a plain SGD step."""
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    optimizer = torch_optim.make_optimizer(model, "sgd", lr=1.0, momentum=0.0, weight_decay=0, clip_grad_norm=1.0)
    model.weight.grad = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    optimizer.step()
    assert torch.allclose(model.weight.detach(), torch.tensor([[-0.6, -0.8, 0.0, 0.0]]))
    unclipped = torch_optim.make_optimizer(model, "sgd", lr=1.0, momentum=0.0, weight_decay=0)
    model.weight.grad = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    unclipped.step()
    assert torch.allclose(model.weight.detach(), torch.tensor([[-3.6, -4.8, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        torch_optim.make_optimizer(model, "rmsprop")
    with pytest.raises(TypeError, match="takes the model first"):
        torch_optim.make_optimizer("sgd", lr=0.01)
    with pytest.raises(ValueError, match="clip_grad_norm must be a positive"):
        torch_optim.make_optimizer(model, "sgd", clip_grad_norm=0)


def test_train_step_clips_the_gradients_it_steps_with():
    torch.manual_seed(0)
    model = small_net()
    x, y = quadrants(32, seed=3)
    norms = []
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: norms.append(_global_norm(model)))
    try:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        loss, logits = torch_training.train_step(model, x * 50, y, optimizer)
        torch_training.train_step(model, x * 50, y, optimizer, clip_grad_norm=0.05)
    finally:
        handle.remove()
    assert norms[0] > 0.05 and norms[1] <= 0.05 * (1 + 1e-5)
    assert logits.shape == (32, 4) and loss.ndim == 0 and not loss.requires_grad


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    torch_checkpoints.save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        torch_checkpoints.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temporary file left behind
    state = torch_checkpoints.load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))


def test_checkpoint_loads_with_weights_only(tmp_path, data):
    train, val = data
    torch_training.fit(small_net(), train, val, epochs=1, batch_size=64, checkpoint_dir=tmp_path, **quiet())
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # raises if anything but plain data
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "history", "rng", "scheduler"}
    assert History.from_dict(state["history"]).epochs == 1


def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(tmp_path, data):
    train, val = data

    def loader():
        # A DataLoader with its own generator: its state must be restored too.
        dataset = torch.utils.data.TensorDataset(*train)
        return torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True,
                                           generator=torch.Generator().manual_seed(7))

    kw = quiet(lr=0.05, schedule="step", step_every=2)
    alexnet_lab.seed_everything(5, frameworks=("torch",))
    whole_model = small_net()
    whole = torch_training.fit(whole_model, loader(), val, epochs=4, **kw)

    alexnet_lab.seed_everything(5, frameworks=("torch",))
    first = torch_training.fit(small_net(), loader(), val, epochs=2, checkpoint_dir=tmp_path, **kw)
    assert first.epochs == 2
    alexnet_lab.seed_everything(99, frameworks=("torch",))  # a new process would not be where the first run was
    resumed_model = small_net()
    resumed = torch_training.fit(resumed_model, loader(), val, epochs=4, checkpoint_dir=tmp_path, resume=True, **kw)
    assert resumed.epochs == 4 and resumed.info["resumed_from_epoch"] == 2
    for key in whole.metrics:
        if key not in TIMING:
            assert resumed[key] == whole[key], key
    assert all(torch.equal(a, b) for a, b in zip(whole_model.state_dict().values(),
                                                 resumed_model.state_dict().values()))
    # Nothing left to do: resuming a finished run returns its history unchanged.
    again = torch_training.fit(small_net(), loader(), val, epochs=4, checkpoint_dir=tmp_path, resume=True, **kw)
    assert again["loss"] == whole["loss"]


def test_resume_with_another_model_says_what_is_wrong(tmp_path, data):
    train, _ = data
    torch_training.fit(small_net(), train, epochs=1, batch_size=96, checkpoint_dir=tmp_path, **quiet())
    with pytest.raises(ValueError, match="does not fit this model"):
        torch_training.fit(torch_models.lenet5(num_classes=4), train, epochs=2, checkpoint_dir=tmp_path, resume=True,
                           **quiet())
    with pytest.raises(ValueError, match="needs the checkpoint_dir"):
        torch_training.fit(small_net(), train, resume=True, **quiet())


def test_evaluate_matches_a_hand_checked_case():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))  # logits = the two input values
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [5.0, 0.0]]).reshape(4, 2, 1, 1)
    y = torch.tensor([0, 1, 0, 0])
    result = torch_training.evaluate(model, [(x[:3], y[:3]), (x[3:], y[3:])])
    # Predictions 0, 1, 1, 0: three of four right. Loss: mean of log(1 + e^(other - true)).
    expected = np.mean([math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(1 + math.exp(2)),
                        math.log(1 + math.exp(-5))])
    assert result["accuracy"] == 0.75
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["images_per_s"] > 0


def test_predict_returns_probabilities_aligned_with_labels_even_when_the_data_shuffles():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3))
    y = torch.arange(30) % 3
    x = (5 * nn.functional.one_hot(y, 3).float()).reshape(30, 3, 1, 1)  # the image "shows" its label
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True)
    scores, labels = torch_training.predict(model, shuffled)
    assert scores.shape == (30, 3) and labels.shape == (30,)
    assert np.allclose(scores.sum(axis=1), 1, atol=1e-6)
    assert (scores.argmax(axis=1) == labels).all() and sorted(labels.tolist()) == sorted(y.tolist())
    logits, _ = torch_training.predict(model, (x, y), probabilities=False)
    assert logits.max() == pytest.approx(5.0)


def test_live_plot_is_updated_every_epoch_and_max_batches_limits_the_epoch(data):
    train, val = data
    calls = []

    class Live:
        def update(self, history):
            calls.append(history.epochs)

    forwards = []
    model = small_net()
    model.register_forward_hook(lambda module, inputs, output: forwards.append(module.training))
    torch_training.fit(model, train, val, epochs=2, batch_size=16, max_batches=3, live=Live(), **quiet())
    assert calls == [1, 2]
    assert forwards.count(True) == 2 * 3 and forwards.count(False) == 2 * 3  # 3 train + 3 val batches per epoch


def test_progress_bars_show_loss_accuracy_and_images_per_second(data, capsys):
    train, val = data
    torch_training.fit(small_net(), train, val, epochs=2, batch_size=32, label="demo")
    out, err = capsys.readouterr()
    assert "img_s=" in err and "acc=" in err and "demo" in err  # tqdm writes to stderr
    assert "epoch 2/2: loss" in out and "img/s" in out
    assert len(out.splitlines()) <= 4  # the set-up line(s) and one line per epoch: short in a notebook


def test_format_epoch_is_the_line_both_frameworks_print():
    values = {"loss": 0.512, "accuracy": 0.8125, "val_loss": 0.6, "val_accuracy": 0.75, "lr": 0.01,
              "images_per_s": 1234.4, "epoch_time_s": 4.23}
    assert format_epoch(2, 10, values) == ("epoch 3/10: loss 0.5120 accuracy 0.8125 val_loss 0.6000 val_accuracy "
                                           "0.7500 | lr 0.01 | 1234 img/s, 4.2 s")
    del values["val_loss"], values["val_accuracy"]
    assert format_epoch(0, 1, values) == "epoch 1/1: loss 0.5120 accuracy 0.8125 | lr 0.01 | 1234 img/s, 4.2 s"


def test_channels_last_and_bfloat16_switches(data):
    train, val = data
    kw = quiet(epochs=2, lr=0.05, batch_size=32)
    runs = {}
    for channels_last in (False, True):  # in float32, whatever "auto" would choose on this CPU
        alexnet_lab.seed_everything(3, frameworks=("torch",))
        model = torch_models.lenet5(num_classes=4, activation="relu")
        runs[channels_last] = torch_training.fit(model, train, val, channels_last=channels_last,
                                                 mixed_precision=False, **kw)
    assert runs[True].info["channels_last"] is True and runs[False].info["channels_last"] is False
    assert torch_training._is_channels_last(model)
    assert np.allclose(runs[True]["loss"], runs[False]["loss"], rtol=1e-4)  # same numbers, other memory order

    alexnet_lab.seed_everything(3, frameworks=("torch",))
    bf16 = torch_training.fit(torch_models.lenet5(num_classes=4, activation="relu"), train, val,
                              mixed_precision="bf16", **kw)
    assert bf16.info["precision"].startswith("bfloat16 autocast")
    assert bf16["loss"][-1] < bf16["loss"][0] and not np.allclose(bf16["loss"], runs[False]["loss"], rtol=1e-4)
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        torch_training.fit(small_net(), train, mixed_precision="half", **kw)


def test_bad_inputs_get_actionable_errors(data):
    train, _ = data
    x, y = train
    from alexnet_lab.data import ImageSet

    images = ImageSet(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int64), ("a", "b"))
    with pytest.raises(TypeError, match="make_batches"):
        torch_training.fit(small_net(), images, **quiet())
    with pytest.raises(TypeError, match="float"):
        torch_training.fit(small_net(), [((x * 255).to(torch.uint8)[:8], y[:8])], **quiet())
    with pytest.raises(ValueError, match=r"Labels must lie in 0\.\.3"):
        torch_training.fit(small_net(), [(x[:8], y[:8] + 4)], **quiet())
    with pytest.raises(ValueError, match="One-hot"):
        torch_training.fit(small_net(), [(x[:8], nn.functional.one_hot(y[:8], 4))], **quiet())
    batches = ((x[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32))
    with pytest.raises(ValueError, match="generator runs out"):
        torch_training.fit(small_net(), batches, epochs=2, **quiet())


def test_tensorboard_logs_when_the_package_is_installed(data, tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="the tensorboard package is not installed")
    train, _ = data
    torch_training.fit(small_net(), train, epochs=1, tensorboard_dir=tmp_path, **quiet())
    assert any(name.startswith("events") for name in os.listdir(tmp_path))


def test_missing_tensorboard_is_reported(data, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    train, _ = data
    with pytest.raises(ImportError, match="pip install tensorboard"):
        torch_training.fit(small_net(), train, epochs=1, tensorboard_dir=tmp_path, **quiet())


# ---------------------------------------------------------------------------
# Real data (skipped unless ALEXNET_LAB_DATA names the shared data folder; see tests/conftest.py)
# ---------------------------------------------------------------------------
needs_real_data = pytest.mark.skipif(not os.environ.get("ALEXNET_LAB_DATA"),
                                     reason="real data sets: set ALEXNET_LAB_DATA to the shared data folder")


def _real(dataset: str, per_class: int, test_per_class: int):
    from alexnet_lab import data

    load = {"fashion_mnist": data.load_fashion_mnist, "cifar10": data.load_cifar10}[dataset]
    return load(per_class=per_class, test_per_class=test_per_class, download=False)


@needs_real_data
@pytest.mark.parametrize("dataset, min_accuracy", [("fashion_mnist", 0.5), ("cifar10", 0.25)])
def test_smoke_training_on_real_data_learns(dataset, min_accuracy):
    from alexnet_lab.data import preprocessing
    from alexnet_lab.torch import pipeline as torch_pipeline

    train, test = _real(dataset, per_class=200, test_per_class=50)
    pre = preprocessing.Preprocess.for_training(train).without_augmentation()
    alexnet_lab.seed_everything(0, frameworks=("torch",))
    h, w, c = train.shape
    model = torch_models.lenet5(num_classes=10, activation="relu", in_channels=c, image_size=h)
    history = torch_training.fit(model, torch_pipeline.make_batches(train, pre, batch_size=32, shuffle=True),
                                 torch_pipeline.make_batches(test, pre, batch_size=128), epochs=4, optimizer="adam",
                                 lr=2e-3, label=dataset, **quiet())
    result = torch_training.evaluate(model, torch_pipeline.make_batches(test, pre, batch_size=128))
    assert history["loss"][-1] < history["loss"][0]
    assert result["accuracy"] > min_accuracy  # held-out images; chance is 0.1


@needs_real_data
def test_resume_with_the_course_pipeline_replays_the_same_augmented_epochs(tmp_path):
    from alexnet_lab.data import preprocessing
    from alexnet_lab.torch import pipeline as torch_pipeline

    train, test = _real("fashion_mnist", per_class=20, test_per_class=10)
    pre = preprocessing.Preprocess.for_training(train)  # random crops, flips: they depend on the epoch number
    kw = quiet(lr=0.02)

    def loaders():
        return (torch_pipeline.make_batches(train, pre, batch_size=32, seed=3),
                torch_pipeline.make_batches(test, pre.without_augmentation(), batch_size=100))

    alexnet_lab.seed_everything(1, frameworks=("torch",))
    whole = torch_training.fit(torch_models.lenet5(), *loaders(), epochs=3, **kw)
    alexnet_lab.seed_everything(1, frameworks=("torch",))
    torch_training.fit(torch_models.lenet5(), *loaders(), epochs=1, checkpoint_dir=tmp_path, **kw)
    resumed = torch_training.fit(torch_models.lenet5(), *loaders(), epochs=3, checkpoint_dir=tmp_path, resume=True,
                                 **kw)  # fresh loaders, as after a restart: they would start at epoch 0
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed[key] == whole[key], key
