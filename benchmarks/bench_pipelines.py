"""How fast do the input pipelines make batches, next to how fast the models they feed train?

For each workload and each framework, this prints the rows below. The **laptop** workloads (the default) are
what the training notebooks train in the laptop profile, with their augmentation and batch size: LeNet-5 and
the compact network on Fashion-MNIST (06 and Assignment B), the compact network on CIFAR-10 (05), the
half-width network of the recipe ablation (07, PCA colour noise included) and of the teacher (08). The
**paper** workloads are the GPU-sized ones: Fashion-MNIST resized 28 -> 227 for the classic AlexNet, and
the ``cifar10`` preset, both with the paper's augmentation.

* **pipeline**: images/s the input pipeline alone delivers (``torch_pipeline.make_batches`` with 0 and
  2 worker processes, ``keras_pipeline.make_batches``), in steady state: the first batch of every pass
  (start-up) is not counted (:func:`alexnet_lab.core.measure.time_batches`, as in ``alexnet-lab bench``);
* **training**: images/s of training steps (forward, backward, SGD update: PyTorch's is
  ``torch_training.train_step``, Keras' ``model.train_on_batch``) of the model it feeds, on a
  batch already in memory;
* **fed**: images/s of the same training steps taking their batches from the pipeline.

The pipeline is not the bottleneck when its images/s is well above the training images/s, and
"fed" is then close to "training". Every figure is the median over repetitions, after a warm-up.
The images are random, of the data sets' shapes: the speed does not depend on the pixel values.

Usage::

    python benchmarks/bench_pipelines.py --quick            # the laptop workloads, a few minutes on 2 idle cores
    python benchmarks/bench_pipelines.py --cases paper      # the GPU-sized workloads
    python benchmarks/bench_pipelines.py --json results.json

From Python::

    from benchmarks.bench_pipelines import run
    rows = run(quick=True)
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a clone without installing

from alexnet_lab import data  # noqa: E402
from alexnet_lab.core import measure  # noqa: E402
from alexnet_lab.core.files import atomic_write_json  # noqa: E402
from alexnet_lab.data import preprocessing  # noqa: E402
from alexnet_lab.keras import pipeline as keras_pipeline  # noqa: E402
from alexnet_lab.torch import pipeline as torch_pipeline  # noqa: E402

# Each case: a data set's image shape, the Preprocess.for_training arguments, the model the pipeline feeds
# (AlexNet's builder arguments, or "lenet5") and the batch size (None: the settings').
_PAD4 = dict(crop="pad", crop_padding=4, flip=True, lighting_std=0.0)
_COMPACT = dict(preset="compact", norm="batch")
CASES = {
    "laptop": {
        "06 LeNet-5, Fashion-MNIST": dict(shape=(28, 28, 1), pre=dict(crop="pad", crop_padding=2, flip=True,
                                                                      lighting_std=0.0), model="lenet5",
                                          batch_size=128),
        "06 compact, Fashion-MNIST": dict(shape=(28, 28, 1), pre=dict(crop="pad", crop_padding=2, flip=True,
                                                                      lighting_std=0.0),
                                          model=dict(_COMPACT, in_channels=1, image_size=28), batch_size=128),
        "05 compact, CIFAR-10": dict(shape=(32, 32, 3), pre=_PAD4, model=_COMPACT, batch_size=128),
        "07 half width, CIFAR-10": dict(shape=(32, 32, 3), pre=dict(_PAD4, lighting_std=0.1),
                                        model=dict(_COMPACT, width=0.5, dropout=0.25), batch_size=128),
        "08 teacher, half width": dict(shape=(32, 32, 3), pre=_PAD4, model=dict(_COMPACT, width=0.5, num_classes=8),
                                       batch_size=128),
    },
    "paper": {
        "fashion_mnist 28->227": dict(shape=(28, 28, 1), pre=dict(image_size=227),
                                      model=dict(preset="classic", in_channels=1, num_classes=10), batch_size=None),
        "cifar10 32": dict(shape=(32, 32, 3), pre={}, model=dict(preset="cifar10"), batch_size=None),
    },
}

SETTINGS = {
    # images per pipeline pass, repetitions, batch size, training steps timed per repetition
    True: dict(images=384, reps=2, batch_size=32, train_steps=2),
    False: dict(images=4096, reps=5, batch_size=64, train_steps=6),
}


def torch_trainer(model_kwargs):
    """A function doing one SGD step (lr 0.01, momentum 0.9) of the PyTorch model on a batch ``(x, y)``:
    ``torch_training.train_step``, in float32."""
    import torch

    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import training as torch_training

    model = torch_models.lenet5() if model_kwargs == "lenet5" else torch_models.alexnet(**model_kwargs)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x, y):
        loss, _ = torch_training.train_step(model, x, y, optimizer)
        return loss.item()

    return step


def keras_trainer(model_kwargs):
    """A function doing one SGD step of the Keras model on a batch ``(x, y)``."""
    import keras

    from alexnet_lab.keras import models as keras_models

    model = keras_models.lenet5() if model_kwargs == "lenet5" else keras_models.alexnet(**model_kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def step(x, y):
        return float(model.train_on_batch(x, y))

    return step


def time_training(step, batches, steps: int, reps: int, batch_size: int) -> float:
    """Median images/s of ``steps`` training steps, ``reps`` times, after one warm-up step.

    ``batches`` is a function returning an iterator of ``(x, y)``, called once per repetition (pass one
    that repeats a single batch to time the model alone). The clock starts once the first batch is
    there, and counts getting each following batch: what a training loop waits for in an epoch.
    """
    x, y = next(iter(batches()))
    step(x, y)                                          # warm-up: tracing, memory allocation
    times = []
    for _ in range(reps):
        it = iter(batches())
        x, y = next(it)
        start = time.perf_counter()
        for _ in range(steps):
            step(x, y)
            x, y = next(it)
        times.append(time.perf_counter() - start)
    return steps * batch_size / statistics.median(times)


def _repeat(batch):
    def batches():
        while True:
            yield batch
    return batches


def bench_case(name: str, case: dict, settings: dict) -> list[dict]:
    """The rows of one data set: one per input pipeline, with the training speed of the model it feeds."""
    n, reps, steps = settings["images"], settings["reps"], settings["train_steps"]
    bs = case["batch_size"] or settings["batch_size"]
    n = max(n, 4 * bs)
    train, _ = data.random_dataset(n, 1, case["shape"])
    pre = preprocessing.Preprocess.for_training(train, **case["pre"])
    fed_images = preprocessing.num_batches(n, bs, drop_last=True) * bs
    steps = min(steps, fed_images // bs - 1)            # the fed run must not run out of batches
    rows = []
    for framework in ("torch", "keras"):
        if framework == "torch":
            variants = {f"torch_pipeline (workers={w})": dict(num_workers=w) for w in (0, 2)}
            make_trainer, make_loader = torch_trainer, torch_pipeline.make_batches
        else:
            variants = {"keras_pipeline (tf.data)": {}}
            make_trainer, make_loader = keras_trainer, keras_pipeline.make_batches
        step = make_trainer(case["model"])
        first = next(iter(make_loader(train, pre, batch_size=bs, **next(iter(variants.values())))))
        train_rate = time_training(step, _repeat(first), steps, reps, bs)
        for label, kwargs in variants.items():
            make = functools.partial(make_loader, train, pre, batch_size=bs, drop_last=True, **kwargs)
            pipe_rate, counted = measure.time_batches(make, reps)
            fed_rate = time_training(step, make, steps, reps, bs)
            rows.append(dict(
                load_average=measure.load_average(), data=name, framework=framework, pipeline=label, batch_size=bs,
                output_shape=list(first[0].shape[1:]), images_per_pass=counted, repetitions=reps,
                pipeline_images_per_s=round(pipe_rate, 1),
                model=case["model"] if isinstance(case["model"], str) else
                ", ".join(f"{k}={v}" for k, v in case["model"].items() if k not in ("norm", "preset")),
                training_images_per_s=round(train_rate, 1), fed_training_images_per_s=round(fed_rate, 1),
                pipeline_over_training=round(pipe_rate / train_rate, 1),
            ))
            print(_format_row(rows[-1]), flush=True)
    return rows


def run(quick: bool = True, cases: str = "laptop") -> list[dict]:
    """Measure every case of ``cases`` (``"laptop"``, ``"paper"`` or ``"all"``); returns one dict per (workload,
    input pipeline) and prints them as they come."""
    settings = SETTINGS[bool(quick)]
    print(f"input pipelines vs training, {'quick' if quick else 'full'} settings {settings}; "
          f"{os.cpu_count()} CPU cores{_load()}; images/s, medians over {settings['reps']} repetitions", flush=True)
    print(_format_header(), flush=True)
    rows = []
    chosen = {**CASES["laptop"], **CASES["paper"]} if cases == "all" else CASES[cases]
    for name, case in chosen.items():
        rows.extend(bench_case(name, case, settings))
    return rows


def _load() -> str:
    """The machine's load average, where the OS reports one: other programs running slow every figure down."""
    load = measure.load_average()
    return "" if load is None else f" (load average {load:.1f})"


def _format_header() -> str:
    return (f"{'workload':<26} {'pipeline':<26} {'pipeline':>10} {'model':<44} {'training':>9} {'fed':>9} "
            f"{'pipe/train':>10}")


def _format_row(r: dict) -> str:
    return (f"{r['data']:<26} {r['pipeline']:<26} {r['pipeline_images_per_s']:>10.0f} {r['model']:<44} "
            f"{r['training_images_per_s']:>9.1f} {r['fed_training_images_per_s']:>9.1f} "
            f"{r['pipeline_over_training']:>9.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, steps and repetitions")
    parser.add_argument("--cases", choices=("laptop", "paper", "all"), default="laptop",
                        help="the laptop profile's workloads (default), the GPU-sized ones, or both")
    parser.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        parser.error(f"--json: the folder {Path(args.json).resolve().parent} does not exist")
    rows = run(quick=args.quick, cases=args.cases)
    if args.json:
        atomic_write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
