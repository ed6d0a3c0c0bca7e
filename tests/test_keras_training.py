"""keras training, optim, precision, checkpoints: fit learns, same History and same API as PyTorch, schedules,
early stopping, checkpoints, resume, evaluate."""

import inspect
import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import alexnet_lab  # noqa: E402
from alexnet_lab.core import hardware  # noqa: E402
from alexnet_lab.core.history import History  # noqa: E402
from alexnet_lab.core.schedules import one_cycle_lr  # noqa: E402
from alexnet_lab.keras import batches as keras_batches  # noqa: E402
from alexnet_lab.keras import models as keras_models  # noqa: E402
from alexnet_lab.keras import optim as keras_optim  # noqa: E402
from alexnet_lab.keras import precision as keras_precision  # noqa: E402
from alexnet_lab.keras import training as keras_training  # noqa: E402

TIMING = ("images_per_s", "epoch_time_s")


def quadrants(n: int, seed: int, noise: float = 1.0, signal: float = 0.35):
    """A learnable 4-class task: the class is the brighter quadrant of a 28×28 image (NHWC float32)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, noise, (n, 28, 28, 1)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * 14:(r + 1) * 14, q * 14:(q + 1) * 14, 0] += signal
    return x, y


def small_net() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 5, strides=3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dropout(0.3), keras.layers.Dense(4)])


def quiet(**kwargs):
    return {"progress": False, "verbose": 0, **kwargs}


@pytest.fixture(scope="module")
def data():
    return quadrants(192, seed=1), quadrants(96, seed=2)


@pytest.fixture
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_fit_learns_and_returns_the_same_history_format_as_pytorch(data):
    train, val = data
    alexnet_lab.seed_everything(0)
    model = keras_models.lenet5(num_classes=4, activation="relu")
    before = keras_training.evaluate(model, val)
    history = keras_training.fit(model, train, val, epochs=4, lr=0.05, batch_size=32, label="lenet", **quiet())
    assert isinstance(history, History) and history.framework == "keras" and history.label == "lenet"
    assert all(len(v) == 4 for v in history.metrics.values())
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert before["accuracy"] < 0.45 and history["val_accuracy"][-1] > 0.8  # chance: 0.25
    after = keras_training.evaluate(model, val)
    assert after["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert after["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-4)

    # The PyTorch side's history has the same metrics and the same info keys: one plot serves both.
    torch = pytest.importorskip("torch")
    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import training as torch_training

    x, y = train
    torch_train = (torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y))
    torch_val = (torch.from_numpy(val[0].transpose(0, 3, 1, 2).copy()), torch.from_numpy(val[1]))
    twin = torch_training.fit(torch_models.lenet5(num_classes=4, activation="relu"), torch_train, torch_val,
                              epochs=1, batch_size=64, **quiet())
    assert set(twin.metrics) == set(history.metrics) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr",
                                                         "images_per_s", "epoch_time_s"}
    core = {"device", "precision", "channels_last", "seed", "optimizer", "lr", "weight_decay", "schedule", "monitor"}
    assert core <= set(twin.info) and core <= set(history.info)
    from alexnet_lab.teaching import plots

    fig = plots.plot_history(history, twin)
    assert fig is not None


def test_seeded_runs_with_xla_repeat_exactly_on_a_cpu(data, monkeypatch):
    """What the notebooks rely on: notebook.start seeds with deterministic=False so that Keras keeps XLA."""
    from tensorflow.python.framework import config as tf_config

    monkeypatch.setattr(keras_precision, "_gpus", lambda: [])
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # XLA's CPUs
    train, val = data
    was_deterministic = tf_config.is_op_determinism_enabled()
    try:
        runs = []
        for _ in range(2):
            alexnet_lab.seed_everything(3, deterministic=False)
            assert keras_precision.choose_compile(None, "auto")[0] is True, "XLA should be on without deterministic ops"
            model = small_net()
            history = keras_training.fit(model, train, val, epochs=2, lr=0.05, batch_size=32, **quiet())
            runs.append((history["loss"], np.concatenate([w.ravel() for w in model.get_weights()])))
        assert runs[0][0] == runs[1][0], "the same seed should give the same losses"
        np.testing.assert_array_equal(runs[0][1], runs[1][1])
    finally:
        if was_deterministic:
            tf_config.enable_op_determinism()


def test_images_per_second_counts_every_image_including_a_smaller_last_batch(data):
    train, _ = data
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["images"])

    model = small_net()
    keras_training.fit(model, (train[0][:70], train[1][:70]), epochs=1, batch_size=32, **quiet())
    model.fit(keras_batches.as_batches((train[0][:70], train[1][:70]), batch_size=32, num_classes=4), epochs=1,
              shuffle=False, verbose=0, callbacks=[Spy()])
    assert seen == [70.0]  # 32 + 32 + 6


def test_plateau_divides_the_learning_rate_by_10_after_patience_epochs_without_improvement(data):
    train, val = data
    keras.utils.set_random_seed(0)
    history = keras_training.fit(small_net(), train, val, epochs=6, lr=1e-7, weight_decay=0, schedule="plateau",
                                 plateau_patience=2, batch_size=64, **quiet())
    assert len(set(history["val_accuracy"])) == 1  # the controlled metric: never improves after epoch 1
    # Same expectation as the PyTorch test: the two frameworks count patience the same way.
    assert history["lr"] == pytest.approx([1e-7, 1e-7, 1e-7, 1e-8, 1e-8, 1e-9], rel=1e-6)


def test_cosine_and_step_schedules_match_pytorch(data):
    train, _ = data
    kw = quiet(epochs=4, lr=0.1, batch_size=96, weight_decay=0)
    cosine = keras_training.fit(small_net(), train, schedule="cosine", **kw)
    assert cosine["lr"] == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)], rel=1e-6)
    step = keras_training.fit(small_net(), train, schedule="step", step_every=2, **kw)
    assert step["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01], rel=1e-6)


def test_one_cycle_schedule_is_the_core_formula_and_is_saved_with_the_optimizer():
    for total, pct in [(100, 0.25), (7, 0.3), (12, 0.25), (1955, 0.25)]:
        schedule = keras_optim.OneCycle(0.2, total, pct_start=pct)
        got = [float(schedule(keras.ops.convert_to_tensor(step))) for step in range(total + 2)]
        assert got == pytest.approx([one_cycle_lr(step, total, 0.2, pct_start=pct) for step in range(total + 2)],
                                    rel=1e-6)
    optimizer = keras_optim.make_optimizer(None, "sgd", lr=0.2, nesterov=True)
    schedule = keras_optim.make_scheduler(optimizer, "onecycle", epochs=3, steps_per_epoch=4)
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    assert not isinstance(schedule, keras.callbacks.Callback) and "onecycle" in keras_optim.PER_BATCH
    assert float(optimizer.learning_rate) == pytest.approx(0.2 / 25, rel=1e-6)  # step 0
    optimizer.iterations.assign(2)
    assert float(optimizer.learning_rate) == pytest.approx(0.2, rel=1e-6)  # the peak: step 2 (3 = 12/4 steps up)
    config = keras.optimizers.serialize(optimizer)
    again = keras.optimizers.deserialize(config)
    assert isinstance(again, keras_optim.SGD) and again.nesterov
    assert isinstance(again._learning_rate, keras_optim.OneCycle)  # the schedule itself, not its value
    assert again._learning_rate.get_config() == schedule.get_config()


def test_one_cycle_resumes_mid_schedule_like_an_uninterrupted_run(tmp_path, data):
    (x, y), _ = data

    def net():  # no dropout: its random masks are not part of a checkpoint
        keras.utils.set_random_seed(5)
        return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 5, strides=3, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(4)])

    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(48)  # 4 batches per epoch, always in this order

    class StopInEpoch2:
        def update(self, history):  # called before the epoch's checkpoint is written: the last one is epoch 1's
            if history.epochs == 2:
                raise KeyboardInterrupt

    kw = quiet(lr=0.1, schedule="onecycle", nesterov=True, label_smoothing=0.1)
    straight = net()
    whole = keras_training.fit(straight, batches, epochs=3, **kw)
    with pytest.raises(KeyboardInterrupt):
        keras_training.fit(net(), batches, epochs=3, checkpoint_dir=tmp_path, live=StopInEpoch2(), **kw)
    resumed_model = net()
    resumed = keras_training.fit(resumed_model, batches, epochs=3, checkpoint_dir=tmp_path, resume=True, **kw)
    assert resumed.info["resumed_from_epoch"] == 1 and int(resumed_model.optimizer.iterations) == 12
    assert whole["lr"] == pytest.approx([one_cycle_lr(step, 12, 0.1) for step in (0, 4, 8)], rel=1e-6)
    assert resumed["lr"] == pytest.approx(whole["lr"], rel=1e-6)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    for a, b in zip(straight.get_weights(), resumed_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert float(resumed_model.optimizer.learning_rate) == pytest.approx(one_cycle_lr(11, 12, 0.1), rel=1e-6)


def test_early_stopping_stops_when_validation_accuracy_stops_improving(data):
    train, val = data
    history = keras_training.fit(small_net(), train, val, epochs=10, lr=1e-7, early_stopping=2, batch_size=64,
                                 **quiet())
    assert history.epochs == 3 and history.info["stopped_early_after_epoch"] == 3


def test_weight_decay_means_what_it_means_in_pytorch():
    """Three SGD steps with momentum and weight decay give the same weights in both frameworks."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False)])
    model.layers[0].kernel.assign(w0)
    model.compile(optimizer=keras_optim.make_optimizer(model, "sgd", lr=0.1, momentum=0.9, weight_decay=0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    linear = torch.nn.Linear(5, 3, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w0.T))
    opt = torch.optim.SGD(linear.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    for _ in range(3):
        model.train_on_batch(x, y)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(linear(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    keras_w = model.layers[0].kernel.numpy()
    torch_w = linear.weight.detach().numpy().T
    assert np.allclose(keras_w, torch_w, atol=1e-6)

    # Keras' own (decoupled) weight_decay gives other weights: the reason for keras_optim.SGD.
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False)])
    plain.layers[0].kernel.assign(w0)
    plain.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(3):
        plain.train_on_batch(x, y)
    assert not np.allclose(plain.layers[0].kernel.numpy(), torch_w, atol=1e-4)


def test_gradient_clipping_uses_the_global_norm():
    optimizer = keras_optim.make_optimizer(None, "sgd", clip_grad_norm=1.5)
    assert optimizer.global_clipnorm == 1.5
    variable = keras.Variable(np.zeros(4, np.float32))
    optimizer = keras_optim.make_optimizer(None, "sgd", lr=1.0, momentum=0.0, weight_decay=0, clip_grad_norm=1.0)
    optimizer.apply([tf.constant([3.0, 4.0, 0.0, 0.0])], [variable])  # norm 5 -> clipped to 1
    assert np.allclose(variable.numpy(), [-0.6, -0.8, 0, 0])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        keras_optim.make_optimizer(None, "rmsprop")
    with pytest.raises(TypeError, match="takes the model"):
        keras_optim.make_optimizer("sgd", lr=0.01)  # the PyTorch order: the model first
    with pytest.raises(ValueError, match="clip_grad_norm must be a positive"):
        keras_optim.make_optimizer(None, "sgd", clip_grad_norm=0)


def test_plateau_scheduler_follows_a_scripted_validation_metric_like_pytorch():
    """The same script and expectation as the PyTorch test: the callback, fed one epoch's logs at a time."""
    model = small_net()
    model.compile(optimizer=keras_optim.make_optimizer(model, "sgd", lr=1.0), loss="mse")
    scheduler = keras_optim.make_scheduler(model.optimizer, "plateau", epochs=10, plateau_patience=2)
    scheduler.set_model(model)
    scheduler.on_train_begin()
    lrs = []
    for epoch, accuracy in enumerate([0.50, 0.60, 0.60, 0.61, 0.61, 0.61, 0.70, 0.69]):
        lrs.append(float(model.optimizer.learning_rate))
        scheduler.on_epoch_end(epoch, {"val_accuracy": accuracy})
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 1, 0.1, 0.1])
    assert keras_optim.make_scheduler(model.optimizer, None, epochs=10) is None
    assert keras_optim.make_early_stopping(None) is None
    with pytest.raises(ValueError, match="early_stopping patience must be at least 1"):
        keras_optim.make_early_stopping(0)


def test_both_sides_have_the_same_public_functions_with_the_same_arguments():
    """What issue 16 asks: read one side beside the other; the concepts both have are called alike."""
    pytest.importorskip("torch")
    from alexnet_lab.torch import optim as torch_optim
    from alexnet_lab.torch import precision as torch_precision
    from alexnet_lab.torch import training as torch_training

    pairs = [(keras_optim, torch_optim, ("make_optimizer", "make_scheduler", "make_early_stopping")),
             (keras_precision, torch_precision, ("describe_device", "cuda_capability", "choose_precision",
                                                 "choose_compile")),
             (keras_training, torch_training, ("evaluate", "predict"))]
    for keras_module, torch_module, names in pairs:
        for name in names:
            k = inspect.signature(getattr(keras_module, name)).parameters
            t = inspect.signature(getattr(torch_module, name)).parameters
            # Keras' choose_compile also takes the model (a tf.distribute strategy decides XLA for itself).
            extra = {"model"} if name == "choose_compile" else set()
            assert list(k)[:len(t)] == list(t) and set(k) - set(t) == extra, (keras_module.__name__, name)
            assert all(k[p].kind == t[p].kind for p in t), (keras_module.__name__, name)
    fit_k = inspect.signature(keras_training.fit).parameters
    fit_t = inspect.signature(torch_training.fit).parameters
    assert set(fit_t) - set(fit_k) == {"device"} and set(fit_k) <= set(fit_t)  # TensorFlow places itself


def test_checkpoint_and_resume_continue_where_training_stopped(tmp_path, data):
    train, val = data
    kw = quiet(lr=0.05, batch_size=64, schedule="plateau", early_stopping=5)
    keras.utils.set_random_seed(1)
    first_model = small_net()
    first = keras_training.fit(first_model, train, val, epochs=2, checkpoint_dir=tmp_path, **kw)
    assert sorted(os.listdir(tmp_path)) == ["history.json", "model.keras"]  # no temporary file left
    state = json.loads((tmp_path / "history.json").read_text())
    assert state["resume"]["epoch"] == 2 and History.load(tmp_path / "history.json").epochs == 2
    assert set(state["resume"]["callbacks"]) == {"plateau", "early_stopping"}
    saved_weights = first_model.get_weights()

    resumed_model = small_net()  # fresh weights: resume must replace them with the saved ones
    resumed = keras_training.fit(resumed_model, train, val, epochs=4, checkpoint_dir=tmp_path, resume=True, **kw)
    assert resumed.epochs == 4 and resumed.info["resumed_from_epoch"] == 2
    for key in first.metrics:
        if key not in TIMING:
            assert resumed[key][:2] == first[key], key
    assert int(resumed_model.optimizer.iterations) == 4 * 3  # 3 batches per epoch: the step count went on
    assert resumed["loss"][2] < first["loss"][0]  # epoch 3 started from trained weights, not from scratch
    assert not all(np.array_equal(a, b) for a, b in zip(saved_weights, resumed_model.get_weights()))
    assert json.loads((tmp_path / "history.json").read_text())["resume"]["epoch"] == 4


def test_a_resumed_run_sees_the_batches_of_a_run_that_never_stopped(tmp_path, data):
    """The course's tf.data pipeline counts epochs; on resume, fit tells it which epoch comes next."""
    from alexnet_lab.data import ImageSet, preprocessing
    from alexnet_lab.keras import pipeline as keras_pipeline

    (x, y), _ = data
    images = ImageSet(np.clip(x * 64 + 128, 0, 255).astype(np.uint8), y.astype(np.int64), ("a", "b", "c", "d"))
    pre = preprocessing.Preprocess(mean=(0.5,), std=(0.25,))

    def net():  # no dropout: its random masks are not part of a checkpoint
        keras.utils.set_random_seed(5)
        return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 5, strides=3, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(4)])

    def batches():  # built anew for every run, as a restarted program would
        return keras_pipeline.make_batches(images, pre, batch_size=64, shuffle=True, seed=7)

    kw = quiet(lr=0.05)
    straight = net()
    keras_training.fit(straight, batches(), epochs=3, **kw)
    stopped = net()
    keras_training.fit(stopped, batches(), epochs=1, checkpoint_dir=tmp_path, **kw)
    resumed = net()
    keras_training.fit(resumed, batches(), epochs=3, checkpoint_dir=tmp_path, resume=True, **kw)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_resume_restores_the_weights_and_optimizer_exactly(tmp_path, data):
    train, _ = data
    model = small_net()
    keras_training.fit(model, train, epochs=1, batch_size=64, checkpoint_dir=tmp_path, **quiet())
    other = small_net()
    # epochs=1 with resume: nothing left to train, so the model holds exactly the saved state.
    keras_training.fit(other, train, epochs=1, batch_size=64, checkpoint_dir=tmp_path, resume=True, **quiet())
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(model.optimizer.variables, other.optimizer.variables))


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, data, monkeypatch):
    train, _ = data
    model = small_net()
    keras_training.fit(model, train, epochs=1, batch_size=64, checkpoint_dir=tmp_path, **quiet())
    good = [w.copy() for w in model.get_weights()]

    def broken_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        keras_training.fit(model, train, epochs=2, batch_size=64, checkpoint_dir=tmp_path, resume=True, **quiet())
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["history.json", "model.keras"]
    assert json.loads((tmp_path / "history.json").read_text())["resume"]["epoch"] == 1
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert all(np.array_equal(a, b) for a, b in zip(good, loaded.get_weights()))


def test_resume_with_another_model_says_what_is_wrong(tmp_path, data):
    train, _ = data
    keras_training.fit(small_net(), train, epochs=1, batch_size=96, checkpoint_dir=tmp_path, **quiet())
    with pytest.raises(ValueError, match="does not fit this model"):
        keras_training.fit(keras_models.lenet5(num_classes=4), train, epochs=2, checkpoint_dir=tmp_path,
                           resume=True, **quiet())


def test_evaluate_matches_a_hand_checked_case():
    model = keras.Sequential([keras.Input((1, 1, 2)), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)])
    model.layers[-1].kernel.assign(np.eye(2, dtype=np.float32))  # logits = the two input values
    x = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [5.0, 0.0]], np.float32).reshape(4, 1, 1, 2)
    y = np.array([0, 1, 0, 0])
    result = keras_training.evaluate(model, (x, y), batch_size=3)
    expected = np.mean([math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(1 + math.exp(2)),
                        math.log(1 + math.exp(-5))])
    assert result["accuracy"] == 0.75
    assert result["loss"] == pytest.approx(expected, rel=1e-6)


def test_predict_keeps_scores_and_labels_aligned_on_shuffled_data():
    model = keras.Sequential([keras.Input((1, 1, 3)), keras.layers.Flatten(), keras.layers.Dense(3, use_bias=False)])
    model.layers[-1].kernel.assign(np.eye(3, dtype=np.float32))
    y = np.arange(30) % 3
    x = (5 * np.eye(3, dtype=np.float32)[y]).reshape(30, 1, 1, 3)  # the image "shows" its label
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(30).batch(8)
    scores, labels = keras_training.predict(model, shuffled)
    assert scores.shape == (30, 3) and np.allclose(scores.sum(axis=1), 1, atol=1e-6)
    assert (scores.argmax(axis=1) == labels).all() and sorted(labels) == sorted(y)


def test_mixed_precision_policy_and_checks(data, monkeypatch, float32_policy):
    monkeypatch.setattr(keras_precision, "_gpus", lambda: [])
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    assert keras_precision.choose_precision(None, "auto")[0] == "float32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert keras_precision.choose_precision(None, "auto")[0] == "mixed_bfloat16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert keras_precision.choose_precision("CPU", "auto")[0] == "mixed_bfloat16"  # measured faster on such a CPU
    assert keras_precision.choose_precision(mode=False)[0] == "float32"
    assert keras_precision.choose_precision(mode="fp16")[0] == "mixed_float16"
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        keras_precision.choose_precision(None, "half")

    train, val = data
    with pytest.raises(ValueError, match=r"use_mixed_precision\('bf16'\)"):
        keras_training.fit(small_net(), train, mixed_precision="bf16", **quiet())
    assert keras_precision.use_mixed_precision("bf16", verbose=0) == "mixed_bfloat16"
    model = keras_models.lenet5(num_classes=4, activation="relu")
    history = keras_training.fit(model, train, val, epochs=2, lr=0.05, batch_size=32, mixed_precision="bf16",
                                 **quiet())
    assert history.info["precision"] == "mixed_bfloat16"
    assert history["loss"][-1] < history["loss"][0]
    with pytest.raises(ValueError, match="dtype policy 'mixed_bfloat16'"):
        keras_training.fit(model, train, mixed_precision=False, **quiet())
    # evaluate takes the same mixed_precision as PyTorch's: Keras computes in the model's policy and checks it.
    after = keras_training.evaluate(model, val, mixed_precision="auto")
    assert after["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert keras_training.evaluate(model, val, mixed_precision="bf16")["accuracy"] == after["accuracy"]
    with pytest.raises(ValueError, match="dtype policy 'mixed_bfloat16'"):
        keras_training.evaluate(model, val, mixed_precision=False)


def test_devices_are_named_like_pytorch_and_a_mode_in_the_device_place_is_refused(monkeypatch):
    assert keras_precision.describe_device("CPU").startswith("CPU (")
    assert keras_precision.describe_device("cpu") == keras_precision.describe_device("/CPU:0")
    assert keras_precision.cuda_capability("CPU") is None
    monkeypatch.setattr(keras_precision, "_gpus", lambda: [])
    assert keras_precision.describe_device() == keras_precision.describe_device("CPU")  # no GPU: Keras uses the CPU
    with pytest.raises(ValueError, match="sees 0 GPU"):
        keras_precision.describe_device("GPU:0")
    for wrong in ("auto", True, "bf16", "tpu", "gpu:x"):  # e.g. choose_precision("auto"): the mode comes second
        with pytest.raises(ValueError, match="Unknown device"):
            keras_precision.choose_precision(wrong)
    with pytest.raises(ValueError, match="Unknown device"):
        keras_precision.choose_compile("auto")


def test_progress_live_tensorboard_and_max_batches(data, tmp_path, capsys):
    train, val = data
    calls = []

    class Live:
        def update(self, history):
            calls.append(history.epochs)

    history = keras_training.fit(small_net(), train, val, epochs=2, batch_size=16, max_batches=3, live=Live(),
                                 tensorboard_dir=tmp_path / "tb", label="demo")
    assert calls == [1, 2]
    out, err = capsys.readouterr()
    assert "img_s=" in err and "demo" in err
    assert "epoch 2/2: loss" in out and len(out.splitlines()) <= 4
    assert history["images_per_s"][0] > 0
    assert any("events" in name for _, _, files in os.walk(tmp_path / "tb") for name in files)
    # max_batches=3 of 16 images: the epoch saw 48 images, not 192.
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["images"])

    model = small_net()
    keras_training.fit(model, train, epochs=1, batch_size=16, max_batches=3, **quiet())
    model.fit(keras_batches.as_batches(train, batch_size=16, shuffle=True, max_batches=3, num_classes=4), epochs=1,
              shuffle=False, verbose=0, callbacks=[Spy()])
    assert seen == [48.0]


def test_bad_inputs_get_actionable_errors(data):
    (x, y), _ = data
    from alexnet_lab.data import ImageSet

    images = ImageSet(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4, np.int64), ("a", "b"))
    with pytest.raises(TypeError, match="make_batches"):
        keras_training.fit(small_net(), images, **quiet())
    with pytest.raises(TypeError, match="float"):
        keras_training.fit(small_net(), ((x * 255).astype(np.uint8), y), **quiet())
    with pytest.raises(TypeError, match="float"):
        keras_training.fit(small_net(), tf.data.Dataset.from_tensor_slices(((x * 255).astype(np.uint8), y)).batch(8),
                           **quiet())
    with pytest.raises(ValueError, match=r"Labels must lie in 0\.\.3"):
        keras_training.fit(small_net(), (x, y + 4), **quiet())
    with pytest.raises(ValueError, match="One-hot"):
        keras_training.fit(small_net(), (x, np.eye(4, dtype=np.float32)[y]), **quiet())
    with pytest.raises(ValueError, match="batches of shape"):
        keras_training.fit(small_net(), tf.data.Dataset.from_tensor_slices((x, y)), **quiet())


# ---------------------------------------------------------------------------
# Real data (skipped unless ALEXNET_LAB_DATA names the shared data folder; see tests/conftest.py)
# ---------------------------------------------------------------------------
@pytest.mark.skipif(not os.environ.get("ALEXNET_LAB_DATA"),
                    reason="real data sets: set ALEXNET_LAB_DATA to the shared data folder")
@pytest.mark.parametrize("dataset, min_accuracy", [("fashion_mnist", 0.5), ("cifar10", 0.25)])
def test_smoke_training_on_real_data_learns(dataset, min_accuracy):
    from alexnet_lab import data
    from alexnet_lab.data import preprocessing
    from alexnet_lab.keras import pipeline as keras_pipeline

    load = {"fashion_mnist": data.load_fashion_mnist, "cifar10": data.load_cifar10}[dataset]
    train, test = load(per_class=200, test_per_class=50, download=False)
    pre = preprocessing.Preprocess.for_training(train).without_augmentation()
    alexnet_lab.seed_everything(0)
    h, w, c = train.shape
    model = keras_models.lenet5(num_classes=10, activation="relu", in_channels=c, image_size=h)
    history = keras_training.fit(model, keras_pipeline.make_batches(train, pre, batch_size=32, shuffle=True),
                                 keras_pipeline.make_batches(test, pre, batch_size=128), epochs=4, optimizer="adam",
                                 lr=2e-3, label=dataset, **quiet())
    result = keras_training.evaluate(model, keras_pipeline.make_batches(test, pre, batch_size=128))
    assert history["loss"][-1] < history["loss"][0]
    assert result["accuracy"] > min_accuracy  # held-out images; chance is 0.1
