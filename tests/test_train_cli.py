"""alexnet-lab train: settings, the run folder, resuming a killed run, Keras under tf.distribute (one and two workers)."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from alexnet_lab import data
from alexnet_lab.cli import train as train_cli
from alexnet_lab.cli.main import build_parser, main
from alexnet_lab.core.history import History

ROOT = Path(__file__).resolve().parent.parent
# LeNet-5 on ~50 random 28×28 images: seconds per epoch, whatever the framework.
TINY = ["--dataset", "random", "--preset", "lenet5", "--per-class", "6", "--test-per-class", "2",
        "--val-fraction", "0.2", "--batch-size", "8", "--profile", "smoke", "--max-batches", "100", "--no-progress"]


def _settings(*argv):
    return train_cli.resolve(build_parser().parse_args(["train", *argv]))


def _env(**extra):
    """This environment without any distributed set-up of its own, one thread per process, plus ``extra``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG"):
        env.pop(name, None)
    return {**env, **extra}


# ---------------------------------------------------------------------------
# Settings and errors
# ---------------------------------------------------------------------------
def test_settings_come_from_the_profile_and_the_notebooks_unless_given():
    cfg = _settings("--framework", "torch", "--dataset", "cifar10", "--profile", "laptop", "--out", "x")
    # the laptop profile's CIFAR-10 sizes (all the data, 5 epochs, batches of 128); the cifar10 preset with SGD 0.01
    # with momentum and a cosine schedule (notebook 05's settings before it moved to the compact preset)
    assert (cfg.preset, cfg.per_class, cfg.test_per_class, cfg.epochs, cfg.batch_size) == ("cifar10", None, None, 5, 128)
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.optimizer, cfg.schedule) == (0.01, 0.9, 5e-4, "sgd", "cosine")
    assert cfg.augment and cfg.max_batches is None and cfg.strategy == "auto"
    smoke = _settings("--framework", "keras", "--dataset", "fashion_mnist", "--profile", "smoke", "--out", "x")
    assert (smoke.preset, smoke.epochs, smoke.batch_size, smoke.max_batches, smoke.max_eval_batches) == (
        "fashion_mnist", 1, 16, 4, 2)
    given = _settings("--framework", "torch", "--dataset", "fashion_mnist", "--preset", "lenet5", "--profile", "full",
                      "--epochs", "3", "--batch-size", "512", "--lr", "0.2", "--schedule", "none", "--out", "x")
    assert (given.epochs, given.batch_size, given.lr, given.schedule, given.per_class) == (3, 512, 0.2, None, None)
    assert _settings("--framework", "torch", "--dataset", "fashion_mnist", "--preset", "lenet5", "--profile",
                     "laptop", "--out", "x").batch_size == 128  # the LeNet-5 notebook's laptop batch


@pytest.mark.parametrize("argv, message", [
    (["--framework", "torch", "--dataset", "imagenet"], "neither one of fashion_mnist, cifar10, random nor a folder"),
    (["--framework", "torch", "--dataset", "random", "--strategy", "mirrored"], "--strategy is for --framework keras"),
    (["--framework", "keras", "--dataset", "random", "--device", "cuda"], "--device and --workers are for"),
    (["--framework", "torch", "--dataset", "random", "--preset", "lenet5", "--norm", "batch"], "LeNet-5 has no --norm"),
    (["--framework", "torch", "--dataset", "random", "--dropout", "1.5"], "0 <= dropout < 1"),
])
def test_bad_options_get_actionable_errors(argv, message, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is written for a run that cannot start"


def test_a_data_set_folder_that_does_not_exist_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "no-such" / "photos"
    with pytest.raises(data.DataNotFoundError, match="no such folder"):  # a FileNotFoundError
        _settings("--framework", "torch", "--dataset", str(missing), "--out", "x")
    assert main(["train", "--framework", "torch", "--dataset", str(missing), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("alexnet-lab: error: --dataset ") and f"{missing}: no such folder" in err
    assert err.count("\n") == 1 and "Traceback" not in err, "one line, no traceback"
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_cannot_be_written_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from alexnet_lab.cli import runs

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(runs.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    assert main(["train", "--framework", "torch", *TINY, "--out", str(locked / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"alexnet-lab: error: Cannot write the run folder {locked / 'run'}: {locked} is not a folder")
    assert not (locked / "run").exists()


# ---------------------------------------------------------------------------
# PyTorch: the run folder, resuming
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("torch") / "run"
    assert main(["train", "--framework", "torch", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_the_run_folder_holds_config_history_checkpoint_and_metrics(torch_run):
    files = sorted(str(p.relative_to(torch_run)) for p in torch_run.rglob("*") if p.is_file())
    assert files == ["checkpoints/checkpoint.pt", "config.json", "history.json", "metrics.json"]
    config = json.loads((torch_run / "config.json").read_text())
    assert config["settings"]["preset"] == "lenet5" and config["settings"]["epochs"] == 2
    assert config["processes"] == 1 and config["global_batch_size"] == 8 and "torch" in config["versions"]
    history = History.load(torch_run / "history.json")
    metrics = json.loads((torch_run / "metrics.json").read_text())
    assert history.epochs == metrics["epochs"] == 2 and history.info["processes"] == 1
    assert metrics["val_accuracy"] == history.last("val_accuracy") and metrics["train_loss"] == history.last("loss")
    assert metrics["training_time_s"] == pytest.approx(sum(history["epoch_time_s"]))
    assert metrics["wall_time_s"] >= metrics["training_time_s"] > 0
    # smoke profile: at most 2 test batches of 8 images; 20 random test images, ten classes: chance level
    assert metrics["test_images"] == 16 and 0 <= metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    assert math.isfinite(metrics["train_images_per_s"]) and metrics["train_images_per_s"] > 0


def test_a_run_folder_is_never_overwritten_and_resume_keeps_the_settings(torch_run, capsys):
    before = (torch_run / "checkpoints" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["train", "--framework", "torch", *TINY, "--epochs", "2", "--out", str(torch_run)]) == 2
    assert "already holds a run. Pass --resume" in capsys.readouterr().err
    assert main(["train", "--framework", "torch", *TINY, "--epochs", "2", "--seed", "1", "--resume",
                 "--out", str(torch_run)]) == 2
    assert "seed: 0 -> 1" in capsys.readouterr().err
    assert main(["train", "--framework", "keras", *TINY, "--epochs", "2", "--resume", "--out", str(torch_run)]) == 2
    assert "framework: 'torch' -> 'keras'" in capsys.readouterr().err
    assert (torch_run / "checkpoints" / "checkpoint.pt").stat().st_mtime_ns == before


# Sleeps after writing the first checkpoint, so that the test can kill the process at that moment.
SLOW_WRAPPER = textwrap.dedent('''
    import sys, time
    from alexnet_lab.torch import checkpoints
    save = checkpoints.save_checkpoint

    def save_then_wait(path, state):
        save(path, state)
        if state["epoch"] == 1:
            time.sleep(300)

    checkpoints.save_checkpoint = save_then_wait
    from alexnet_lab.cli.main import main
    sys.exit(main(sys.argv[1:]))
''')


def test_a_killed_run_resumes_from_its_last_checkpoint_and_finishes(tmp_path, capsys):
    import torch

    args = ["train", "--framework", "torch", *TINY, "--epochs", "3"]
    wrapper = tmp_path / "slow_cli.py"
    wrapper.write_text(SLOW_WRAPPER)
    out = tmp_path / "killed"
    checkpoint = out / "checkpoints" / "checkpoint.pt"
    process = subprocess.Popen([sys.executable, str(wrapper), *args, "--out", str(out)], cwd=ROOT, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert checkpoint.exists(), process.stderr.read().decode()[-2000:] if process.poll() is not None else "timeout"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    assert not (out / "metrics.json").exists()

    assert main([*args, "--resume", "--out", str(out)]) == 0
    assert "resuming from" in capsys.readouterr().out
    history = History.load(out / "history.json")
    assert history.epochs == 3 and all(len(v) == 3 for v in history.metrics.values()), "every epoch once"
    assert history.info["resumed_from_epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3

    # The same training without the interruption ends with the same weights.
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    resumed = torch.load(checkpoint, weights_only=True)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "checkpoint.pt", weights_only=True)
    for name, weights in whole["model"].items():
        torch.testing.assert_close(resumed["model"][name], weights, rtol=1e-5, atol=1e-6, msg=name)
    np.testing.assert_allclose(history["loss"], whole["history"]["metrics"]["loss"], rtol=1e-5)


def test_an_image_folder_trains_too(tmp_path):
    images = data.random_dataset(n_train=24, n_test=8, image_shape=(28, 28, 3), num_classes=2, seed=1)
    folder = data.make_image_folder(images, tmp_path / "photos", classes=("class 0", "class 1"), format="png")
    out = tmp_path / "run"
    assert main(["train", "--framework", "torch", "--dataset", str(folder), "--preset", "lenet5", "--epochs", "1",
                 "--batch-size", "4", "--profile", "smoke", "--val-fraction", "0.25", "--no-progress",
                 "--out", str(out)]) == 0
    counts = json.loads((out / "config.json").read_text())["images"]
    assert counts["train"] + counts["val"] == 24 and counts["val"] > 0 and counts["test"] == 8
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


@pytest.mark.skipif(not os.environ.get("ALEXNET_LAB_DATA"), reason="needs the real data (ALEXNET_LAB_DATA)")
def test_a_smoke_run_on_real_fashion_mnist(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--framework", "torch", "--dataset", "fashion_mnist", "--preset", "lenet5",
                 "--profile", "smoke", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["images"] == {"train": 180, "val": 20, "test": 100}  # smoke: 20 + 10 per class, 10% held out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test_images"] == 32  # 2 test batches of 16


# ---------------------------------------------------------------------------
# Keras: MirroredStrategy (one replica on this CPU) and two MultiWorkerMirroredStrategy workers
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    """A Keras training under --strategy mirrored, in this process: (run folder, TrainResult)."""
    out = tmp_path_factory.mktemp("keras") / "run"
    cfg = _settings("--framework", "keras", *TINY, "--epochs", "2", "--strategy", "mirrored", "--out", str(out))
    return out, train_cli.train(cfg)


def test_keras_mirrored_strategy_creates_the_model_and_optimizer_inside_its_scope(keras_run):
    import tensorflow as tf

    out, result = keras_run
    strategy = result.strategy
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 1
    assert result.model.distribute_strategy is strategy
    variables = [*result.model.weights, *result.model.optimizer.variables]
    assert len(variables) > 10
    assert all(strategy.extended.variable_created_in_scope(v.value) for v in variables)
    assert all(isinstance(v.value, tf.distribute.DistributedValues) for v in result.model.weights)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["checkpoints/history.json", "checkpoints/model.keras", "config.json", "history.json",
                     "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "MirroredStrategy: 1 replica(s) in sync" and metrics["epochs"] == 2


def test_keras_counts_the_training_images_not_the_validation_ones():
    """metrics.json's images/s: Keras reads the epoch's image count after validation has reused the metric."""
    import keras

    from alexnet_lab.keras import training as keras_training

    x, y = np.zeros((50, 4, 4, 1), "float32"), np.zeros(50, "int64")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras_training.ImageCount()])
    seen = []
    spy = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        (float(logs["images"]), float(logs["val_images"]))))
    model.fit(x[:36], y[:36], validation_data=(x[36:], y[36:]), batch_size=16, epochs=1, verbose=0, callbacks=[spy])
    assert seen == [(36.0, 14.0)]


def test_keras_resumes_a_run(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--framework", "keras", *TINY, "--strategy", "mirrored", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    history = History.load(out / "history.json")
    assert history.epochs == 2 and history.info["resumed_from_epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


AUDIT_WRAPPER = textwrap.dedent('''
    import json, os, sys
    written, recording = [], [True]
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event, args):
        if recording[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            if isinstance(args[2], int) and args[2] & WRITE_FLAGS:
                written.append(os.path.realpath(os.fsdecode(args[0])))
        elif recording[0] and event in ("os.rename", "os.mkdir"):
            written.append(os.path.realpath(os.fsdecode(args[1] if event == "os.rename" else args[0])))

    sys.addaudithook(hook)
    from alexnet_lab.cli.main import main
    code = main(sys.argv[1:])
    recording[0] = False
    with open(os.environ["AUDIT_FILE"], "w") as f:
        json.dump(written, f)
    sys.exit(code)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_keras_multi_worker_strategy_with_two_local_workers(keras_run, tmp_path):
    """Two processes on localhost ports, configured by TF_CONFIG, train like one replica with the same batch."""
    single_out, _ = keras_run
    out = tmp_path / "run"
    wrapper = tmp_path / "audited_cli.py"
    wrapper.write_text(AUDIT_WRAPPER)
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env = _env(TF_CONFIG=tf_config, AUDIT_FILE=str(tmp_path / f"worker{index}.json"))
        processes.append(subprocess.Popen(
            [sys.executable, str(wrapper), "train", "--framework", "keras", *TINY, "--epochs", "2", "--out", str(out)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [p.communicate(timeout=400)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [p.returncode for p in processes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "MultiWorkerMirroredStrategy: 2 replica(s) in sync" in logs[0] and "epoch" not in logs[1]

    run = os.path.realpath(out)
    written = [[p for p in json.loads((tmp_path / f"worker{i}.json").read_text()) if p.startswith(run + os.sep)]
               for i in range(2)]
    assert written[1] == [], f"worker 1 wrote in the run folder: {written[1]}"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["checkpoints/history.json", "checkpoints/model.keras", "config.json", "history.json",
                     "metrics.json"]
    # 2 workers × batches of 4 take the same steps as 1 replica with batches of 8.
    two = History.load(out / "history.json")
    one = History.load(single_out / "history.json")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-3, atol=1e-4, err_msg=key)
    assert json.loads((out / "metrics.json").read_text())["per_process_batch_size"] == 4
