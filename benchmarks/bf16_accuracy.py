"""Does bfloat16 change what AlexNet learns? A short real training run in float32 and in bfloat16, same seed.

Where the course's default path computes in bfloat16 (GPUs of compute capability 8.0 or more, CPUs with
AMX; see ``alexnet_lab.torch.precision``), it is faster; this checks that it is also sound. For each framework
and seed it trains the ``cifar10`` preset on real CIFAR-10 images twice, once in float32 and once in
bfloat16 (PyTorch: autocast; Keras: the ``mixed_bfloat16`` policy), from the same initial weights and on
the same batches, and prints the test accuracy of both next to each other. Differences between the two
precisions are only meaningful next to the differences between seeds, so use several seeds.

On a CPU without bfloat16 arithmetic (AVX2 only) bfloat16 is emulated and several times *slower*; the
run still answers the accuracy question, it just takes longer::

    python benchmarks/bf16_accuracy.py                                  # PyTorch, 200 images per class, 3 epochs
    python benchmarks/bf16_accuracy.py --frameworks torch keras --seeds 0 1 2 --json bf16.json
    python benchmarks/bf16_accuracy.py --device cuda --per-class 1000 --epochs 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from alexnet_lab import (
    data,  # noqa: E402
    seed_everything,  # noqa: E402
)
from alexnet_lab.core.files import atomic_write_json  # noqa: E402
from alexnet_lab.data import preprocessing  # noqa: E402
from alexnet_lab.keras import pipeline as keras_pipeline  # noqa: E402
from alexnet_lab.torch import pipeline as torch_pipeline  # noqa: E402

SETTINGS = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)


def _train_torch(train, test, pre, *, precision: str, seed: int, epochs: int, batch_size: int, device) -> dict:
    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import training as torch_training

    seed_everything(seed, frameworks=("torch",))
    model = torch_models.alexnet("cifar10")  # the same initial weights for both precisions
    mixed = "bf16" if precision == "bfloat16" else False
    start = time.perf_counter()
    history = torch_training.fit(
        model, torch_pipeline.make_batches(train, pre, batch_size=batch_size, shuffle=True, seed=seed), epochs=epochs,
        mixed_precision=mixed, channels_last=False, compile=False, device=device, progress=False, verbose=0,
        **SETTINGS)
    seconds = time.perf_counter() - start
    result = torch_training.evaluate(model, torch_pipeline.make_batches(test, pre, batch_size=256),
                                     mixed_precision=mixed)
    return {"test_accuracy": result["accuracy"], "train_loss": history["loss"][-1], "train_s": seconds,
            "precision_used": history.info["precision"]}


def _train_keras(train, test, pre, *, precision: str, seed: int, epochs: int, batch_size: int, device) -> dict:
    import keras

    from alexnet_lab.keras import models as keras_models
    from alexnet_lab.keras import precision as keras_precision
    from alexnet_lab.keras import training as keras_training
    from alexnet_lab.teaching import transfer
    from alexnet_lab.torch import models as torch_models

    # The initial weights of the PyTorch run with this seed, so that both frameworks start alike.
    seed_everything(seed, frameworks=("torch",))
    initial = torch_models.alexnet("cifar10")
    seed_everything(seed, deterministic=False, frameworks=("tensorflow",))
    keras_precision.use_mixed_precision("bf16" if precision == "bfloat16" else False, verbose=0)
    try:
        model = keras_models.alexnet("cifar10")
        transfer.torch_to_keras(initial, model)
        start = time.perf_counter()
        history = keras_training.fit(
            model, keras_pipeline.make_batches(train, pre, batch_size=batch_size, shuffle=True, seed=seed),
            epochs=epochs, mixed_precision="bf16" if precision == "bfloat16" else False, progress=False, verbose=0,
            **SETTINGS)
        seconds = time.perf_counter() - start
        result = keras_training.evaluate(model, keras_pipeline.make_batches(test, pre, batch_size=256))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"test_accuracy": result["accuracy"], "train_loss": history["loss"][-1], "train_s": seconds,
            "precision_used": history.info["precision"]}


def run(*, frameworks=("torch",), seeds=(0,), per_class: int = 200, test_per_class: int = 100, epochs: int = 3,
        batch_size: int = 64, device=None, printer=print) -> list[dict]:
    """Train every (framework, seed) in float32 and in bfloat16; one record per run."""
    train, test = data.load_cifar10(per_class=per_class, test_per_class=test_per_class, seed=0)
    mean, std = preprocessing.channel_stats(train)
    pre = preprocessing.Preprocess(mean=mean, std=std)
    trainers = {"torch": _train_torch, "keras": _train_keras}
    records = []
    for framework in frameworks:
        for seed in seeds:
            for precision in ("float32", "bfloat16"):
                record = {"framework": framework, "seed": seed, "precision": precision, "epochs": epochs,
                          "train_images": len(train), "test_images": len(test),
                          **trainers[framework](train, test, pre, precision=precision, seed=seed, epochs=epochs,
                                                batch_size=batch_size, device=device)}
                printer(f"{framework:5} seed {seed} {precision:8}: test accuracy {record['test_accuracy']:.3f}, "
                        f"final training loss {record['train_loss']:.3f}, {record['train_s']:.0f} s "
                        f"({record['precision_used']})")
                records.append(record)
    return records


def summary(records: list[dict]) -> str:
    """Per framework: the mean accuracy of each precision, their difference and the float32 seed spread."""
    lines = []
    for framework in dict.fromkeys(r["framework"] for r in records):
        acc = {p: [r["test_accuracy"] for r in records if r["framework"] == framework and r["precision"] == p]
               for p in ("float32", "bfloat16")}
        diffs = [b - a for a, b in zip(acc["float32"], acc["bfloat16"])]
        spread = max(acc["float32"]) - min(acc["float32"]) if len(acc["float32"]) > 1 else None
        lines.append(f"{framework}: float32 {statistics.mean(acc['float32']):.3f}, bfloat16 "
                     f"{statistics.mean(acc['bfloat16']):.3f} (bfloat16 - float32 per seed: "
                     f"{', '.join(f'{d:+.3f}' for d in diffs)}; float32 range over seeds: "
                     f"{'n/a (one seed)' if spread is None else f'{spread:.3f}'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=["torch"], choices=("torch", "keras"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--per-class", type=int, default=200, help="training images per class (default 200)")
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", help="PyTorch device (default: the best one found)")
    parser.add_argument("--json", metavar="PATH", help="also write one record per run to this JSON file")
    args = parser.parse_args(argv)
    records = run(frameworks=args.frameworks, seeds=args.seeds, per_class=args.per_class,
                  test_per_class=args.test_per_class, epochs=args.epochs, batch_size=args.batch_size,
                  device=args.device)
    print(summary(records))
    if args.json:
        atomic_write_json(args.json, records)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
