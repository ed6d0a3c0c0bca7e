"""Distributed training: batch splitting, the sharded sampler, torchrun/TF_CONFIG parsing, and real 2-process DDP runs on Gloo.

The modules: alexnet_lab.core.cluster (framework-free), alexnet_lab.torch.distributed, alexnet_lab.keras.distributed,
and the rank/world_size of alexnet_lab.torch.pipeline.make_batches.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet_lab import data
from alexnet_lab.cli.main import main
from alexnet_lab.core import cluster
from alexnet_lab.data import preprocessing
from alexnet_lab.keras import distributed as keras_distributed
from alexnet_lab.torch import distributed
from alexnet_lab.torch import pipeline as torch_pipeline

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"


# ---------------------------------------------------------------------------
# Framework-free pieces
# ---------------------------------------------------------------------------
def test_the_global_batch_splits_evenly_or_the_error_says_what_to_use():
    assert cluster.per_process_batch_size(256, 4) == 64
    assert cluster.per_process_batch_size(7, 1) == 7
    with pytest.raises(ValueError, match=r"does not split evenly over 4.*--batch-size 8 or 12"):
        cluster.per_process_batch_size(10, 4)
    with pytest.raises(ValueError, match="positive integer"):
        cluster.per_process_batch_size(0, 2)


def test_learning_rate_scaling_rules():
    assert cluster.scaled_lr(0.01, 256, 1024) == pytest.approx(0.04)
    assert cluster.scaled_lr(0.01, 256, 1024, "sqrt") == pytest.approx(0.02)
    assert cluster.scaled_lr(0.1, 128, 64) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="'linear' or 'sqrt'"):
        cluster.scaled_lr(0.01, 256, 512, "cubic")


def test_shards_cover_every_item_once_in_order_and_differ_by_at_most_one():
    for n in range(0, 23):
        for world in range(1, 6):
            parts = [cluster.shard(n, r, world) for r in range(world)]
            items = [i for p in parts for i in range(n)[p]]
            assert items == list(range(n)), (n, world)
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="rank must lie in 0..1"):
        cluster.shard(10, 2, 2)


@pytest.fixture(scope="module")
def images():
    train, _ = data.random_dataset(n_train=37, n_test=1, image_shape=(12, 12, 3), num_classes=4, seed=3)
    pre = preprocessing.Preprocess.for_training(train, flip=True, lighting_std=0.1)  # crops, flips and colour noise
    return train, pre


def _sampler(train, pre, rank, world, **kwargs):
    geometry = pre.geometry(train.shape[:2])
    return torch_pipeline.EpochSampler(len(train), geometry, pre, 3, rank=rank, world_size=world, seed=5, **kwargs)


@pytest.mark.parametrize("drop_last", [False, True])
def test_sharded_sampler_gives_each_process_its_part_of_the_single_process_batches(images, drop_last):
    train, pre = images
    one = _sampler(train, pre, 0, 1, batch_size=8, drop_last=drop_last)
    parts = [_sampler(train, pre, r, 2, batch_size=8, drop_last=drop_last) for r in range(2)]
    for epoch in range(2):  # two passes: two different epochs, the same in both set-ups
        whole = list(one)
        # One process gets the plans of alexnet_lab.data.preprocessing.batch_plans, unchanged.
        plain = list(preprocessing.batch_plans(len(train), pre.geometry(train.shape[:2]), pre, 3, batch_size=8,
                                               seed=5, epoch=epoch, drop_last=drop_last))
        assert len(plain) == len(whole)
        for a, b in zip(plain, whole, strict=True):
            for name in ("indices", "rows", "cols", "color_shift"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        split = [list(p) for p in parts]
        assert len(whole) == len(one) == (4 if drop_last else 5)
        assert [len(s) for s in split] == [len(p) for p in parts]
        for b, plan in enumerate(whole):
            joined = [split[r][b] for r in range(2) if b < len(split[r])]
            for name in ("indices", "rows", "cols", "color_shift"):
                np.testing.assert_array_equal(np.concatenate([getattr(j, name) for j in joined]), getattr(plan, name))
        if epoch == 0:
            first_order = np.concatenate([p.indices for p in whole])
    assert not np.array_equal(first_order, np.concatenate([p.indices for p in whole])), "each epoch reshuffles"
    for sampler in [one, *parts]:
        sampler.set_epoch(0)
    assert np.array_equal(np.concatenate([p.indices for p in one]), first_order), "set_epoch(0) repeats epoch 0"


def test_a_last_batch_smaller_than_the_process_count_leaves_a_process_without_it(images):
    train, pre = images  # 37 images, global batches of 12: 3 full batches and one of 1 image
    parts = [_sampler(train, pre, r, 2, batch_size=12, shuffle=False) for r in range(2)]
    assert [len(p) for p in parts] == [4, 3]
    assert [len(list(p)) for p in parts] == [4, 3]
    assert sum(len(plan) for p in parts for plan in p) == 37


def test_sharded_sampler_checks_its_arguments(images):
    train, pre = images
    with pytest.raises(ValueError, match="does not split evenly over 3"):
        _sampler(train, pre, 0, 3, batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="rank must lie in 0..1"):
        _sampler(train, pre, 2, 2, batch_size=8)


def test_torchrun_variables_are_read_and_checked():
    assert cluster.torchrun_env({}) is None
    env = cluster.torchrun_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
                                    "MASTER_ADDR": "node0", "MASTER_PORT": "29500"})
    assert (env.rank, env.local_rank, env.world_size, env.local_world_size, env.master) == (3, 1, 4, 2, "node0:29500")
    with pytest.raises(ValueError, match="not LOCAL_RANK: start distributed runs with torchrun"):
        cluster.torchrun_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="RANK must lie in 0..WORLD_SIZE-1"):
        cluster.torchrun_env({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not a whole number"):
        cluster.torchrun_env({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "two"})


def _tf_config(task_type="worker", index=0, cluster=None):
    cluster = cluster or {"worker": ["host1:2222", "host2:2222"]}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_tf_config_is_parsed_and_the_chief_found():
    assert cluster.parse_tf_config(None) is None and cluster.parse_tf_config(" ") is None
    first, second = (cluster.parse_tf_config(_tf_config(index=i)) for i in (0, 1))
    assert first.num_workers == 2 and first.is_chief and not second.is_chief
    with_chief = {"chief": ["boss:2222"], "worker": ["host1:2222", "host2:2222"]}
    assert cluster.parse_tf_config(_tf_config("chief", 0, with_chief)).is_chief
    assert not cluster.parse_tf_config(_tf_config("worker", 0, with_chief)).is_chief
    assert cluster.parse_tf_config(_tf_config("chief", 0, with_chief)).num_workers == 3
    assert keras_distributed.is_chief({}) and keras_distributed.is_chief({"TF_CONFIG": _tf_config(index=0)})
    assert not keras_distributed.is_chief({"TF_CONFIG": _tf_config(index=1)})


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster'"),
    ('{"cluster": {"worker": "host1:2222"}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
    ('{"cluster": {"worker": ["host1"]}, "task": {"type": "worker", "index": 0}}', "must be 'host:port'"),
    ('{"cluster": {"worker": ["host1:2222"]}}', "needs a 'task'"),
    ('{"cluster": {"worker": ["host1:2222"]}, "task": {"type": "ps", "index": 0}}', "'ps' is not in its cluster"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', "must lie in 0..1"),
])
def test_a_bad_tf_config_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        cluster.parse_tf_config(text)


def test_strategy_choice():
    two_machines = cluster.parse_tf_config(_tf_config())
    one_machine = cluster.parse_tf_config(_tf_config(cluster={"worker": ["localhost:2222"]}))
    choose = keras_distributed.choose_strategy
    assert choose("auto", num_gpus=0, tf_config=None) == "none"
    assert choose("auto", num_gpus=1, tf_config=None) == "none"
    assert choose("auto", num_gpus=4, tf_config=None) == "mirrored"
    assert choose("auto", num_gpus=0, tf_config=two_machines) == "multiworker"
    assert choose("auto", num_gpus=0, tf_config=one_machine) == "none"
    assert choose("mirrored", num_gpus=0, tf_config=None) == "mirrored"  # one replica on the CPU
    assert choose("multiworker", num_gpus=0, tf_config=None) == "multiworker"
    with pytest.raises(ValueError, match="each machine would train its own model"):
        choose("mirrored", num_gpus=2, tf_config=two_machines)
    with pytest.raises(ValueError, match="strategy must be one of"):
        choose("parameter_server", num_gpus=0, tf_config=None)


# ---------------------------------------------------------------------------
# PyTorch, one process
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("drop_last", [False, True])
def test_the_loaders_of_two_processes_together_give_the_single_process_batches(images, drop_last):
    train, pre = images  # 37 images in global batches of 8: 4 full batches and one of 5
    whole = torch_pipeline.make_batches(train, pre, batch_size=8, seed=5, drop_last=drop_last)
    parts = [torch_pipeline.make_batches(train, pre, batch_size=8, seed=5, drop_last=drop_last, rank=r, world_size=2)
             for r in range(2)]
    assert len(whole) == (4 if drop_last else 5) and [len(p) for p in parts] == [len(whole)] * 2
    for _ in range(2):  # two epochs
        split = [list(p) for p in parts]
        for b, (x, y) in enumerate(whole):
            assert [len(s[b][1]) for s in split] == [len(y) - len(y) // 2, len(y) // 2]
            assert torch.equal(torch.cat([s[b][0] for s in split]), x)
            assert torch.equal(torch.cat([s[b][1] for s in split]), y)


def test_make_batches_checks_the_rank_and_the_split(images):
    train, pre = images
    with pytest.raises(ValueError, match="does not split evenly over 3"):
        torch_pipeline.make_batches(train, pre, batch_size=8, drop_last=True, rank=0, world_size=3)
    with pytest.raises(ValueError, match="rank must lie in 0..1"):
        torch_pipeline.make_batches(train, pre, batch_size=8, rank=2, world_size=2)


def test_without_torchrun_there_is_one_process_and_no_wrapper(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.init("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_chief, ctx.distributed) == (0, 1, None, True, False)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, ctx) is model
    assert distributed.broadcast_object(ctx, "x") == "x" and distributed.gather_objects(ctx, 3) == [3]
    assert distributed.describe_strategy(ctx) == "1 process on cpu"
    assert distributed.process_group() is None and distributed.is_chief()


def test_the_chief_is_process_0_on_both_sides():
    torchrun = {"LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"}
    assert distributed.is_chief({}) and distributed.is_chief({**torchrun, "RANK": "0"})
    assert not distributed.is_chief({**torchrun, "RANK": "1"})
    assert keras_distributed.is_chief({}) and not keras_distributed.is_chief({"TF_CONFIG": _tf_config(index=1)})


# ---------------------------------------------------------------------------
# PyTorch, two Gloo processes under torchrun
# ---------------------------------------------------------------------------
# Records every file each process opens for writing, renames or creates (Python audit hooks), one
# JSON list per rank: the test checks that process 1 writes nothing in the run folder.
AUDIT_WRAPPER = textwrap.dedent('''
    import json, os, sys
    written, recording = [], [True]
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event, args):
        if not recording[0]:
            return
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            flags, mode = args[2], args[1]
            writes = flags & WRITE_FLAGS if isinstance(flags, int) else any(c in str(mode) for c in "wax+")
            if writes:
                written.append(os.path.realpath(os.fsdecode(args[0])))
        elif event in ("os.rename", "os.mkdir", "os.remove"):
            written.append(os.path.realpath(os.fsdecode(args[1] if event == "os.rename" else args[0])))

    sys.addaudithook(hook)
    from alexnet_lab.cli.main import main
    code = main(sys.argv[1:])
    recording[0] = False
    with open(os.path.join(os.environ["AUDIT_DIR"], "rank%s.json" % os.environ.get("RANK", "single")), "w") as f:
        json.dump(written, f)
    sys.exit(code)
''')

# A tiny deterministic set-up: LeNet-5 (no dropout, no BatchNorm), no augmentation, about 50 random
# 28×28 training images in global batches of 8, 2 epochs.
DDP_ARGS = ["train", "--framework", "torch", "--dataset", "random", "--preset", "lenet5", "--per-class", "6",
            "--test-per-class", "2", "--val-fraction", "0.2", "--epochs", "2", "--lr", "0.05", "--no-augment",
            "--schedule", "none", "--profile", "smoke", "--max-batches", "100", "--device", "cpu", "--no-progress",
            # float32 everywhere: on a CPU with AVX-512 BF16 "auto" computes in bfloat16, whose rounding differs
            # between batches of 4 (two processes) and 8 (one process) by more than this test's tolerance.
            "--mixed-precision", "off"]


def _env(**extra):
    """This environment without any distributed set-up of its own, one thread per process, plus ``extra``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG"):
        env.pop(name, None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """One ``torchrun --nproc_per_node=2`` training (Gloo), with every process's writes recorded."""
    base = tmp_path_factory.mktemp("ddp")
    out, audit = base / "run", base / "audit"
    audit.mkdir()
    wrapper = base / "audited_cli.py"
    wrapper.write_text(AUDIT_WRAPPER)
    # --standalone: torchrun picks a free port on localhost for the rendezvous.
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(wrapper), *DDP_ARGS,
               "--batch-size", "8", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=_env(AUDIT_DIR=str(audit)), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, audit, done.stdout


def _single_process_run(path, batch_size, capsys):
    assert main([*DDP_ARGS, "--batch-size", str(batch_size), "--out", str(path)]) == 0
    capsys.readouterr()
    return torch.load(path / "checkpoints" / "checkpoint.pt", weights_only=True)


def test_two_gloo_processes_end_with_the_weights_of_one_process_with_the_same_global_batch(
        two_process_run, tmp_path, capsys):
    out, _, _ = two_process_run
    ddp = torch.load(out / "checkpoints" / "checkpoint.pt", weights_only=True)
    one = _single_process_run(tmp_path / "one", 8, capsys)
    half = _single_process_run(tmp_path / "half", 4, capsys)  # a control: another batch size gives other weights
    assert ddp["epoch"] == one["epoch"] == 2
    assert list(ddp["model"]) == list(one["model"])  # the unwrapped model's names: no "module." prefix
    for name, weights in one["model"].items():
        torch.testing.assert_close(ddp["model"][name], weights, rtol=1e-5, atol=1e-6, msg=name)
    moved = [(half["model"][k] - v).abs().max().item() for k, v in one["model"].items()]
    assert max(moved) > 1e-3, "the tolerance above must be far smaller than a real difference"
    # The history is the global one: losses and accuracies summed over both processes.
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(ddp["history"]["metrics"][key], one["history"]["metrics"][key], rtol=1e-5)
    assert len(ddp["rng_per_process"]) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["processes"], metrics["per_process_batch_size"], metrics["backend"]) == (2, 4, "gloo")


def test_two_processes_never_write_the_same_file(two_process_run):
    out, audit, stdout = two_process_run
    run = os.path.realpath(out)
    writes = {rank: [p for p in json.loads((audit / f"rank{rank}.json").read_text()) if p.startswith(run + os.sep)]
              for rank in (0, 1)}
    assert writes[1] == [], f"process 1 wrote in the run folder: {writes[1]}"
    expected = {"config.json", "history.json", "metrics.json", os.path.join("checkpoints", "checkpoint.pt")}
    final = {os.path.relpath(p, run) for p in writes[0]} & expected
    assert final == expected, "process 0 wrote the whole run folder"
    left = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert left == expected, f"only one set of files and no temporary files: {left}"
    assert stdout.count("alexnet-lab train: done.") == 1 and stdout.count("epoch 2/2") == 1, "process 0 alone logs"
