"""Train a recipe and the recipe without one ingredient at a time, over several seeds, and say what each is worth.

Every run of :func:`run_ablation` trains a fresh PyTorch AlexNet for the same epochs on the same images, then
measures it once, after the last epoch, on the images it is compared on (notebook 07: all 10,000 CIFAR-10 test
images) and on its own training images without augmentation (how far it fits them: over-fitting is the gap).
A seed fixes the starting weights, the order of the images and the augmentation, so that two variants trained
with the same seed differ only in the ingredient. That pairs them: the gain of an ingredient is measured seed
by seed, and its standard error comes from the spread of those paired differences::

    SE = std(full − variant, over the seeds) / √(number of seeds)

:meth:`Ablation.verdict` calls an ingredient helpful when the full recipe is ahead by more than two standard
errors, harmful when it is behind by more than two, and otherwise says the runs cannot tell.

Example::

    from alexnet_lab.teaching import ablations, recipe
    ablation = ablations.run_ablation(train, test, recipe=recipe.SHORT_RUN, epochs=25, batch_size=128,
                                      leave_out=("augmentation", "dropout"), seeds=(0, 1, 2))
    print(ablation.table())
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from alexnet_lab.core.history import History
from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.teaching.plots import new_figure
from alexnet_lab.teaching.recipe import FULL_RECIPE, INGREDIENTS, Recipe, variants

__all__ = ["Run", "Ablation", "train_torch", "run_ablation", "plot_ablation"]


@dataclass
class Run:
    """One training run: which variant and seed, its history, time, and its accuracies after the last epoch."""

    label: str
    seed: int
    recipe: Recipe
    history: History
    seconds: float
    accuracy: float        # on the images the variants are compared on (notebook 07: the test set)
    train_accuracy: float  # on its own training images, without augmentation, in evaluation mode


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

    def _runs(self, label: str) -> list[Run]:
        found = [run for run in self.runs if run.label == label]
        if not found:
            raise KeyError(f"No run called {label!r}; the runs are {self.labels()}.")
        return found

    def accuracies(self, label: str) -> list[float]:
        """The accuracy of every seed of ``label``, in seed order of training."""
        return [run.accuracy for run in self._runs(label)]

    def mean(self, label: str = FULL_RECIPE) -> float:
        return float(np.mean(self.accuracies(label)))

    def standard_error(self, label: str = FULL_RECIPE) -> float:
        """The standard error of ``label``'s mean accuracy over its seeds (nan with one seed)."""
        return _standard_error(self.accuracies(label))

    def difference(self, label: str, base: str = FULL_RECIPE) -> tuple[float, float]:
        """``(mean, standard error)`` of ``base − label`` over the seeds both were trained with (paired)."""
        mine = {run.seed: run.accuracy for run in self._runs(label)}
        theirs = {run.seed: run.accuracy for run in self._runs(base)}
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            raise ValueError(f"{label!r} and {base!r} share no seed: train them with the same seeds to compare.")
        gains = [theirs[s] - mine[s] for s in seeds]
        return float(np.mean(gains)), _standard_error(gains)

    def verdict(self, label: str, base: str = FULL_RECIPE) -> str:
        """What leaving the ingredient out did, judged by two standard errors of the paired difference."""
        gain, se = self.difference(label, base)
        if math.isnan(se):
            return "one seed: no verdict"
        if gain > 2 * se:
            return "the ingredient helps"
        if gain < -2 * se:
            return "the ingredient hurts"
        return "no clear effect"

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
        """Plain text: each variant's accuracy (mean ± SE), training accuracy, gain of the full recipe, verdict."""
        lines = [f"{'variant':<22} {'seeds':>5} {'accuracy':>14} {'train':>6} {'full recipe gains':>18}  verdict",
                 "-" * 96]
        for label in self.labels():
            runs = self._runs(label)
            se = self.standard_error(label)
            shown = f"{self.mean(label):.3f}" + ("" if math.isnan(se) else f" ± {se:.3f}")
            train = np.mean([run.train_accuracy for run in runs])
            gain, verdict = "", ""
            if label != FULL_RECIPE and FULL_RECIPE in self.labels():
                g, g_se = self.difference(label)
                gain = f"{100 * g:+.1f}" + ("" if math.isnan(g_se) else f" ± {100 * g_se:.1f} pts")
                verdict = self.verdict(label)
            lines.append(f"{label:<22} {len(runs):>5} {shown:>14} {train:>6.3f} {gain:>18}  {verdict}")
        return "\n".join(lines)


def _standard_error(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def train_torch(recipe: Recipe, train: ImageSet, test: ImageSet, *, preset: str = "compact", width: float = 1.0,
                norm: str | None = "batch", epochs: int, batch_size: int, seed: int = 0,
                max_batches: int | None = None, max_eval_batches: int | None = None, label: str = "",
                progress: bool = False, verbose: int = 0):
    """Train a fresh PyTorch AlexNet with ``recipe``; returns ``(model, history, training_preprocess, run)``.

    ``seed`` seeds the weights (:func:`alexnet_lab.seed_everything`) and the data order and augmentation
    (the pipeline's seed). After the last epoch the model is measured on ``test`` and on ``train`` without
    augmentation; ``run`` holds both accuracies (its ``label`` and ``seconds`` are filled in by the caller).
    """
    from alexnet_lab.frameworks import seed_everything
    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.torch import training as torch_training

    preprocess = recipe.preprocess(train)
    seed_everything(seed, frameworks=("torch",))
    h, w, c = train.shape
    model = torch_models.alexnet(preset, num_classes=train.num_classes, in_channels=c, image_size=h, norm=norm,
                                 dropout=recipe.dropout, width=width)
    history = torch_training.fit(model, torch_pipeline.make_batches(train, preprocess, batch_size=batch_size, seed=seed),
                                 epochs=epochs, max_batches=max_batches, label=label, progress=progress,
                                 verbose=verbose, **recipe.fit_options(epochs))
    plain = preprocess.without_augmentation()
    accuracy, train_accuracy = (
        torch_training.evaluate(model, torch_pipeline.make_batches(images, plain, batch_size=500),
                                max_batches=max_eval_batches)["accuracy"]
        for images in (test, train))
    return model, history, preprocess, Run(label, seed, recipe, history, 0.0, accuracy, train_accuracy)


def run_ablation(train: ImageSet, test: ImageSet, *, epochs: int, batch_size: int, recipe: Recipe | None = None,
                 leave_out: Sequence[str] = tuple(INGREDIENTS), seeds: Sequence[int] = (0, 1, 2),
                 keep_models: Sequence[str] = (FULL_RECIPE,), preset: str = "compact", width: float = 1.0,
                 norm: str | None = "batch", max_batches: int | None = None, max_eval_batches: int | None = None,
                 progress: bool = True, report: Callable[[str], None] | None = print) -> Ablation:
    """Train the full recipe and the recipe without each ingredient, each with every seed (PyTorch).

    Args:
        train, test: the training images, and the images every run is measured on after its last epoch.
        epochs, batch_size, max_batches: the same budget for every run.
        recipe: the full recipe (default: the paper's, :class:`~alexnet_lab.teaching.recipe.Recipe`).
        leave_out: the ingredients to switch off, one per variant (``"augmentation"``: crops, flips and
            PCA noise together).
        seeds: the seeds of every variant; three or more give each comparison a standard error.
        keep_models: the variants whose trained models are kept (first seed), e.g. for ten-crop testing.
        preset, width, norm: the network (default: the compact preset with BatchNorm).
        max_eval_batches: at most this many batches of each evaluation (smoke runs).
        report: called with one line per finished run (None: silent).
    """
    plan = variants(recipe, leave_out)
    ablation = Ablation(epochs=epochs)
    bar = _progress_bar(len(plan) * len(seeds), progress)
    try:
        for seed in seeds:  # seed by seed: stopped early, every variant has the same seeds
            for label, variant in plan.items():
                bar.set_description(f"{label}, seed {seed}")
                start = time.perf_counter()
                model, history, preprocess, run = train_torch(
                    variant, train, test, preset=preset, width=width, norm=norm, epochs=epochs,
                    batch_size=batch_size, seed=seed, max_batches=max_batches, max_eval_batches=max_eval_batches,
                    label=f"{label} (seed {seed})")
                run.label, run.seconds = label, time.perf_counter() - start
                ablation.runs.append(run)
                ablation.preprocessing.setdefault(label, preprocess)
                if label in keep_models and not any(name == label for name, _ in ablation.models):
                    ablation.models[(label, seed)] = model
                bar.update(1)
                if report is not None:
                    report(f"{label:<22} seed {seed}: accuracy {run.accuracy:.3f}, on its training images "
                           f"{run.train_accuracy:.3f} ({run.seconds:.0f} s)")
    finally:
        bar.close()
    return ablation


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", disable=not enabled, leave=False)


def plot_ablation(ablation: Ablation, *, title: str | None = None, chance: float | None = None):
    """Horizontal bars: each variant's mean accuracy with ± 2 standard errors, a dot per seed, and hollow
    markers for the accuracy on the training images (the gap between the two is over-fitting)."""
    labels = ablation.labels()
    if not labels:
        raise ValueError("plot_ablation: the ablation has no runs yet.")
    fig, grid = new_figure(figsize=(7.5, 0.5 * len(labels) + 1.6))
    ax = grid[0, 0]
    y = np.arange(len(labels))[::-1]
    means = [ablation.mean(label) for label in labels]
    errors = [0.0 if math.isnan(se) else 2 * se for se in (ablation.standard_error(label) for label in labels)]
    colours = ["#1f77b4" if label == FULL_RECIPE else "#ff7f0e" for label in labels]
    ax.barh(y, means, xerr=errors, color=colours, alpha=0.8, height=0.6, capsize=3)
    for yi, label, mean in zip(y, labels, means):
        accs = ablation.accuracies(label)
        ax.plot(accs, [yi] * len(accs), "o", color="black", markersize=3, zorder=3)
        train = [run.train_accuracy for run in ablation.runs if run.label == label]
        ax.plot([np.mean(train)], [yi], "D", mfc="none", color="black", markersize=6, zorder=3,
                label="on its training images" if yi == y[0] else None)
        ax.text(0.01, yi, f"{mean:.3f}", va="center", fontsize=8, color="white")
    if chance is not None:
        ax.axvline(chance, color="#d62728", linestyle=":", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"accuracy after {ablation.epochs} epoch{'s' if ablation.epochs != 1 else ''} "
                  "(bars: mean ± 2 standard errors; dots: seeds)")
    ax.set_xlim(0, 1.0)
    ax.set_title(title or "The recipe without one ingredient at a time")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
