"""The AlexNet paper's training recipe, ingredient by ingredient, and what each one is worth.

Krizhevsky et al. (2012) trained AlexNet with (sections 4 and 5 of the paper):

* **momentum**: stochastic gradient descent with momentum 0.9;
* **weight decay**: 0.0005, added to the gradient (``0.0005 * w``);
* **schedule**: the learning rate starts at 0.01 and is divided by 10 when the validation error
  stops improving (three times in 90 epochs);
* **dropout**: 0.5 in the two hidden fully connected layers;
* **crops and flips**: random 224×224 crops of the 256×256 images, flipped left-right half of the time;
* **PCA colour noise**: a random shift of every image's colours along the principal components of
  the training set's pixel colours;
* and, at test time, the average of the softmax over **ten crops** (four corners and the centre,
  and their mirror images).

A :class:`Recipe` holds the first six as switches, :func:`variants` makes "the recipe minus one
ingredient" for each of them, :func:`run_ablation` trains every variant with the same seed and
budget (in PyTorch), and :func:`plot_ablation` draws the validation accuracies.
:func:`ten_crop_predict` does the paper's test-time augmentation for a Keras or a PyTorch model.

Two choices made for short, fair comparisons:

* The schedule is a fixed step: the learning rate is divided by 10 once, for the last third of the
  epochs (``alexnet_lab.torch.training.fit(schedule="step")``). The paper's rule ("when the validation error
  stops improving", ``schedule="plateau"``) would fire at different epochs in different runs, or
  not at all in a few epochs, and the comparison would no longer be like with like.
* "No momentum" keeps the learning rate. With momentum 0.9 the steps add up to about
  1 / (1 - 0.9) = 10 times the gradient step, so plain SGD at the same rate moves 10 times less:
  part of what the ablation measures is that smaller step.

Example::

    from alexnet_lab.teaching import recipe
    ablation = recipe.run_ablation(train, val, epochs=5, batch_size=64, seeds=(0,), full_recipe_seeds=(0, 1))
    recipe.plot_ablation(ablation)
    result = recipe.ten_crop_predict(ablation.model("full recipe"), test, ablation.preprocess("full recipe"))
    print(result.center_accuracy, result.ten_crop_accuracy)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from alexnet_lab.core.history import History
from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.frameworks import evaluating, framework_of
from alexnet_lab.teaching.plots import new_figure

__all__ = [
    "INGREDIENTS", "FULL_RECIPE", "Recipe", "variants", "Run", "Ablation", "train_torch", "run_ablation",
    "plot_ablation", "test_time_preprocess", "TenCropResult", "ten_crop_predict", "CROP_NAMES",
]

#: The six training ingredients, in the order the notebook introduces them, with what "off" means.
INGREDIENTS = {
    "momentum": "SGD momentum 0.9 (off: plain SGD, momentum 0, same learning rate)",
    "weight_decay": "weight decay 5e-4 added to the gradient (off: 0)",
    "schedule": "learning rate divided by 10 for the last third of the epochs (off: constant)",
    "dropout": "dropout 0.5 in fc6 and fc7 (off: no dropout layers)",
    "crops_flips": "random crops and left-right flips (off: every image as it is)",
    "pca_noise": "PCA colour noise with alpha ~ Normal(0, 0.1) (off: none)",
}

#: The label of the run with every ingredient.
FULL_RECIPE = "full recipe"

#: The names of the ten crops, in the order :func:`alexnet_lab.data.preprocessing.ten_crops` returns them.
CROP_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right", "centre",
              "top-left, flipped", "top-right, flipped", "bottom-left, flipped", "bottom-right, flipped",
              "centre, flipped")


@dataclass(frozen=True)
class Recipe:
    """The paper's training recipe as switches; the defaults are the paper's values.

    Attributes:
        lr: the initial learning rate (paper: 0.01).
        momentum: SGD momentum (paper: 0.9; 0 is plain SGD).
        weight_decay: L2 weight decay added to the gradient (paper: 5e-4).
        schedule: divide the learning rate by 10 for the last third of the epochs.
        dropout: dropout probability in fc6 and fc7 (paper: 0.5; 0 removes the layers).
        crops_flips: random crops (``crop_padding`` pixels each way) and left-right flips.
        pca_noise: the standard deviation of the PCA colour noise's alpha (paper: 0.1; 0 is off).
        crop_padding: how far a random crop may move; ``None``: the pipelines' default
            (4 pixels for 32×32 images, 16 for 227×227).
    """

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: bool = True
    dropout: float = 0.5
    crops_flips: bool = True
    pca_noise: float = 0.1
    crop_padding: int | None = None

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"Recipe.lr must be positive, got {self.lr}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"Recipe.momentum must lie in [0, 1), got {self.momentum}.")
        if self.weight_decay < 0 or self.pca_noise < 0:
            raise ValueError(f"Recipe.weight_decay and pca_noise must be >= 0, got {self.weight_decay} and "
                             f"{self.pca_noise}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"Recipe.dropout is a probability: 0 <= dropout < 1, got {self.dropout}.")

    def without(self, ingredient: str) -> Recipe:
        """This recipe with one ingredient switched off (see :data:`INGREDIENTS`)."""
        off = {"momentum": {"momentum": 0.0}, "weight_decay": {"weight_decay": 0.0}, "schedule": {"schedule": False},
               "dropout": {"dropout": 0.0}, "crops_flips": {"crops_flips": False}, "pca_noise": {"pca_noise": 0.0}}
        if ingredient not in off:
            raise ValueError(f"Unknown ingredient {ingredient!r}; the ingredients are {', '.join(INGREDIENTS)}.")
        return dataclasses.replace(self, **off[ingredient])

    def ingredients(self) -> list[str]:
        """The ingredients that are on."""
        on = {"momentum": self.momentum > 0, "weight_decay": self.weight_decay > 0, "schedule": self.schedule,
              "dropout": self.dropout > 0, "crops_flips": self.crops_flips, "pca_noise": self.pca_noise > 0}
        return [name for name in INGREDIENTS if on[name]]

    def step_every(self, epochs: int) -> int | None:
        """After how many epochs the learning rate is divided by 10 (once): two thirds of ``epochs``, rounded up."""
        return max(1, math.ceil(2 * epochs / 3)) if self.schedule else None

    def fit_options(self, epochs: int) -> dict:
        """The keyword arguments of :func:`alexnet_lab.torch.training.fit` / :func:`alexnet_lab.keras.training.fit`."""
        return {"lr": self.lr, "optimizer": "sgd", "momentum": self.momentum, "weight_decay": self.weight_decay,
                "schedule": "step" if self.schedule else None, "step_every": self.step_every(epochs)}

    def preprocess(self, train: ImageSet, *, image_size: int | None = None) -> preprocessing.Preprocess:
        """The training preprocessing: statistics from ``train``, and the augmentations this recipe switches on.

        Use ``.without_augmentation()`` on the result for validation and test images.
        """
        options = {"flip": self.crops_flips, "lighting_std": self.pca_noise}
        if not self.crops_flips:
            options["crop_padding"] = 0
        elif self.crop_padding is not None:
            options["crop_padding"] = self.crop_padding
        return preprocessing.Preprocess.for_training(train, image_size=image_size, **options)

    def describe(self) -> str:
        """One line: the settings, e.g. ``SGD lr 0.01, momentum 0.9, weight decay 0.0005, ...``."""
        parts = [f"SGD lr {self.lr:g}", f"momentum {self.momentum:g}", f"weight decay {self.weight_decay:g}",
                 "lr ÷ 10 for the last third" if self.schedule else "constant lr", f"dropout {self.dropout:g}",
                 "crops + flips" if self.crops_flips else "no crops/flips",
                 f"PCA noise {self.pca_noise:g}" if self.pca_noise else "no PCA noise"]
        return ", ".join(parts)


def variants(recipe: Recipe | None = None, leave_out: Sequence[str] = tuple(INGREDIENTS)) -> dict[str, Recipe]:
    """``{"full recipe": recipe, "no momentum": ..., "no weight decay": ..., ...}``: one ingredient off at a time."""
    recipe = recipe or Recipe()
    out = {FULL_RECIPE: recipe}
    for ingredient in leave_out:
        out[f"no {ingredient.replace('_', ' ').replace('crops flips', 'crops/flips')}"] = recipe.without(ingredient)
    return out


# --------------------------------------------------------------------------------------------
# Training runs
# --------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One training run of the ablation: which variant, which seed, its history and how long it took."""

    label: str
    seed: int
    recipe: Recipe
    history: History
    seconds: float

    @property
    def val_accuracy(self) -> float:
        """The validation accuracy after the last epoch (not the best epoch's: no peeking at the validation set)."""
        return self.history.last("val_accuracy")


@dataclass
class Ablation:
    """All the runs of :func:`run_ablation`, the models that were kept, and their preprocessing."""

    runs: list[Run] = field(default_factory=list)
    models: dict = field(default_factory=dict)          # (label, seed) -> trained model
    preprocessing: dict = field(default_factory=dict)   # label -> training Preprocess
    epochs: int = 0

    def labels(self) -> list[str]:
        """The variants, in the order they were trained."""
        return list(dict.fromkeys(run.label for run in self.runs))

    def accuracies(self, label: str) -> list[float]:
        """The final validation accuracy of every seed of ``label``."""
        found = [run.val_accuracy for run in self.runs if run.label == label]
        if not found:
            raise KeyError(f"No run called {label!r}; the runs are {self.labels()}.")
        return found

    def mean(self, label: str) -> float:
        return float(np.mean(self.accuracies(label)))

    def spread(self, label: str = FULL_RECIPE) -> float:
        """Largest minus smallest accuracy over the seeds of ``label`` (0 with one seed): how much is noise."""
        values = self.accuracies(label)
        return float(max(values) - min(values))

    def model(self, label: str = FULL_RECIPE, seed: int | None = None):
        """A kept model (the first seed's, unless ``seed`` is given)."""
        for (name, s), model in self.models.items():
            if name == label and (seed is None or s == seed):
                return model
        raise KeyError(f"No model kept for {label!r}" + (f" seed {seed}" if seed is not None else "")
                       + f"; kept: {list(self.models)}. Pass keep_models=... to run_ablation.")

    def preprocess(self, label: str = FULL_RECIPE) -> preprocessing.Preprocess:
        """The training preprocessing of ``label`` (its statistics serve the test images too)."""
        return self.preprocessing[label]

    def table(self) -> str:
        """A plain-text table: variant, seeds, final validation accuracy, change from the full recipe, time."""
        base = self.mean(FULL_RECIPE) if any(r.label == FULL_RECIPE for r in self.runs) else math.nan
        lines = [f"{'variant':<18} {'seeds':>5} {'val accuracy':>13} {'vs full':>8} {'time':>7}",
                 "-" * 55]
        for label in self.labels():
            accs = self.accuracies(label)
            shown = f"{np.mean(accs):.3f}" + (f" ±{(max(accs) - min(accs)) / 2:.3f}" if len(accs) > 1 else "")
            delta = "" if label == FULL_RECIPE else f"{self.mean(label) - base:+.3f}"
            seconds = sum(r.seconds for r in self.runs if r.label == label) / len(accs)
            lines.append(f"{label:<18} {len(accs):>5} {shown:>13} {delta:>8} {seconds:>6.0f}s")
        return "\n".join(lines)


def train_torch(recipe: Recipe, train: ImageSet, val: ImageSet, *, preset: str = "cifar10", epochs: int,
                batch_size: int, seed: int = 0, max_batches: int | None = None, label: str = "",
                progress: bool = False, verbose: int = 0):
    """Train a fresh PyTorch AlexNet with ``recipe``; returns ``(model, history, training_preprocess)``.

    ``seed`` seeds the weights (:func:`alexnet_lab.seed_everything`) and the data order and
    augmentation (the pipeline's seed), so two recipes trained with one seed start from the same
    weights and see the same images in the same order.
    """
    from alexnet_lab.frameworks import seed_everything
    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.torch import training as torch_training

    preprocess = recipe.preprocess(train)
    seed_everything(seed, frameworks=("torch",))
    h, w, c = train.shape
    model = torch_models.alexnet(preset, num_classes=train.num_classes, in_channels=c, image_size=h,
                                 dropout=recipe.dropout)
    train_loader = torch_pipeline.make_batches(train, preprocess, batch_size=batch_size, seed=seed)
    val_loader = torch_pipeline.make_batches(val, preprocess.without_augmentation(), batch_size=max(batch_size, 256))
    history = torch_training.fit(model, train_loader, val_loader, epochs=epochs, max_batches=max_batches,
                                 label=label, progress=progress, verbose=verbose, **recipe.fit_options(epochs))
    return model, history, preprocess


def run_ablation(train: ImageSet, val: ImageSet, *, epochs: int, batch_size: int, recipe: Recipe | None = None,
                 leave_out: Sequence[str] = tuple(INGREDIENTS), seeds: Sequence[int] = (0,),
                 full_recipe_seeds: Sequence[int] | None = None, keep_models: Sequence[str] = (FULL_RECIPE,),
                 preset: str = "cifar10", max_batches: int | None = None, progress: bool = True,
                 report: Callable[[str], None] | None = print) -> Ablation:
    """Train the full recipe and the recipe minus each ingredient, with the same seeds and budget (PyTorch).

    Args:
        train, val: the training images and the validation images the variants are compared on.
        epochs, batch_size, max_batches: the same budget for every run.
        recipe: the full recipe (default: the paper's, :class:`Recipe`).
        leave_out: the ingredients to switch off, one per variant.
        seeds: the seeds of every variant.
        full_recipe_seeds: the seeds of the full recipe (default: ``seeds``); more seeds there show
            how much the accuracy moves from seed to seed, the yardstick for every other difference.
        keep_models: the variants whose trained models are kept (first seed), e.g. for ten-crop testing.
        report: called with one line per finished run (None: silent).

    Returns:
        An :class:`Ablation`.
    """
    plan = variants(recipe, leave_out)
    ablation = Ablation(epochs=epochs)
    bar = _progress_bar(sum(len(full_recipe_seeds or seeds) if label == FULL_RECIPE else len(seeds)
                            for label in plan), progress)
    try:
        for label, variant in plan.items():
            for seed in (full_recipe_seeds or seeds) if label == FULL_RECIPE else seeds:
                bar.set_description(f"{label}, seed {seed}")
                start = time.perf_counter()
                model, history, preprocess = train_torch(variant, train, val, preset=preset, epochs=epochs,
                                                         batch_size=batch_size, seed=seed, max_batches=max_batches,
                                                         label=f"{label} (seed {seed})")
                run = Run(label, seed, variant, history, time.perf_counter() - start)
                ablation.runs.append(run)
                ablation.preprocessing.setdefault(label, preprocess)
                if label in keep_models and not any(name == label for name, _ in ablation.models):
                    ablation.models[(label, seed)] = model
                bar.update(1)
                if report is not None:
                    report(f"{label:<17} seed {seed}: validation accuracy {run.val_accuracy:.3f} after "
                           f"{history.epochs} epoch{'s' if history.epochs != 1 else ''} ({run.seconds:.0f} s)")
    finally:
        bar.close()
    return ablation


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", disable=not enabled, leave=False)


def plot_ablation(ablation: Ablation, *, title: str | None = None, chance: float | None = None):
    """Horizontal bars: each variant's mean final validation accuracy, a dot per seed, the full recipe's band.

    The grey band spans the full recipe's seeds (lowest to highest): a variant whose bar ends inside
    it is not distinguishable from the full recipe at this budget.
    """
    labels = ablation.labels()
    if not labels:
        raise ValueError("plot_ablation: the ablation has no runs yet.")
    fig, grid = new_figure(figsize=(7.5, 0.45 * len(labels) + 1.6))
    ax = grid[0, 0]
    y = np.arange(len(labels))[::-1]
    means = [ablation.mean(label) for label in labels]
    colours = ["#1f77b4" if label == FULL_RECIPE else "#ff7f0e" for label in labels]
    ax.barh(y, means, color=colours, alpha=0.8, height=0.6)
    for yi, label, mean in zip(y, labels, means):
        accs = ablation.accuracies(label)
        ax.plot(accs, [yi] * len(accs), "o", color="black", markersize=4, zorder=3)
        ax.text(mean, yi, f" {mean:.3f}", va="center", fontsize=8)
    if FULL_RECIPE in labels:
        full = ablation.accuracies(FULL_RECIPE)
        ax.axvspan(min(full), max(full) if max(full) > min(full) else min(full) + 1e-9, color="grey", alpha=0.25,
                   label=f"full recipe: seeds {min(full):.3f} to {max(full):.3f}")
        ax.axvline(np.mean(full), color="#1f77b4", linestyle="--", linewidth=1)
    if chance is not None:
        ax.axvline(chance, color="#d62728", linestyle=":", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"validation accuracy after {ablation.epochs} epoch{'s' if ablation.epochs != 1 else ''} "
                  "(dots: seeds)")
    top = max(max(ablation.accuracies(label)) for label in labels)
    ax.set_xlim(0, min(1.0, top * 1.2 + 0.02))
    ax.set_title(title or "The recipe minus one ingredient at a time")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Test-time augmentation: the paper's ten crops
# --------------------------------------------------------------------------------------------

def test_time_preprocess(preprocess: preprocessing.Preprocess) -> tuple[preprocessing.Preprocess, int]:
    """How to make the larger test images the ten crops are cut from: ``(preprocess, zero_padding)``.

    * ``crop="pad"`` (CIFAR-10: pad 4, crop 32): the test image itself, to be padded with
      ``zero_padding`` zeros on every side; after normalization zero is the training set's mean
      colour, the same padding the training crops saw. The centre crop is the image itself.
    * ``crop="resize"`` (the paper: 256 -> 224): the resized "canvas" (``image_size + 2 * crop_padding``),
      no padding; the centre crop is what the model sees without test-time augmentation.
    """
    if preprocess.crop == "resize":
        if preprocess.image_size is None:
            raise ValueError("A Preprocess with crop='resize' needs an image_size.")
        canvas = preprocess.image_size + 2 * preprocess.crop_padding
        return dataclasses.replace(preprocess, image_size=canvas, crop_padding=0, augment=False), 0
    return preprocess.without_augmentation(), preprocess.crop_padding


@dataclass
class TenCropResult:
    """Class probabilities with one centre crop and averaged over the ten crops, and the true labels."""

    center: np.ndarray      # (N, classes): softmax of the centre crop
    ten_crops: np.ndarray   # (N, classes): softmax averaged over the ten crops
    labels: np.ndarray      # (N,)

    @property
    def center_accuracy(self) -> float:
        return float((self.center.argmax(1) == self.labels).mean())

    @property
    def ten_crop_accuracy(self) -> float:
        return float((self.ten_crops.argmax(1) == self.labels).mean())

    def __repr__(self) -> str:
        return (f"TenCropResult({len(self.labels)} images: centre crop {self.center_accuracy:.4f}, "
                f"ten crops {self.ten_crop_accuracy:.4f})")


def ten_crop_predict(model, data: ImageSet, preprocess: preprocessing.Preprocess, *, batch_size: int = 128,
                     max_batches: int | None = None) -> TenCropResult:
    """The paper's test-time augmentation for a Keras or PyTorch model: softmax averaged over ten crops.

    Args:
        model: a trained model (Keras or PyTorch) that returns logits.
        data: the test images.
        preprocess: the *training* preprocessing (its statistics and crop scheme); see
            :func:`test_time_preprocess` for the larger images the crops are cut from.
        max_batches: at most this many batches (smoke runs).
    """
    big, pad = test_time_preprocess(preprocess)
    size = preprocess.image_size or data.shape[0]
    run = _torch_ten_crops if framework_of(model) == "torch" else _keras_ten_crops
    center, ten, labels = run(model, data, big, pad, size, batch_size, max_batches)
    if not len(labels):
        raise ValueError("ten_crop_predict: the test data gave no batches.")
    return TenCropResult(np.concatenate(center), np.concatenate(ten), np.concatenate(labels))


def _torch_ten_crops(model, data, big, pad, size, batch_size, max_batches):
    import torch
    import torch.nn.functional as F

    from alexnet_lab.torch import pipeline as torch_pipeline

    device = next(model.parameters()).device
    center, ten, labels = [], [], []
    loader = torch_pipeline.make_batches(data, big, batch_size=batch_size, shuffle=False)
    with evaluating(model), torch.no_grad():
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x = F.pad(x.to(device), (pad, pad, pad, pad)) if pad else x.to(device)
            probs = torch.stack([torch.softmax(model(crop).float(), dim=1)
                                 for crop in preprocessing.ten_crops(x, size, channels_first=True)])
            center.append(probs[4].cpu().numpy())       # index 4: the centre crop
            ten.append(probs.mean(0).cpu().numpy())
            labels.append(y.numpy())
    return center, ten, labels


def _keras_ten_crops(model, data, big, pad, size, batch_size, max_batches):
    import keras
    import tensorflow as tf

    from alexnet_lab.keras import pipeline as keras_pipeline

    center, ten, labels = [], [], []
    dataset = keras_pipeline.make_batches(data, big, batch_size=batch_size, shuffle=False)
    for i, (x, y) in enumerate(dataset):
        if max_batches is not None and i >= max_batches:
            break
        if pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        probs = np.stack([keras.ops.convert_to_numpy(keras.ops.softmax(model(crop, training=False), axis=1))
                          for crop in preprocessing.ten_crops(x, size)]).astype(np.float32)
        center.append(probs[4])
        ten.append(probs.mean(0))
        labels.append(y.numpy())
    return center, ten, labels
