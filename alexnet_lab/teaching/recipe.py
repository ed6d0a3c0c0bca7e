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

A :class:`Recipe` holds the first six as switches (and ``augmentation``, the three augmentations
together), :func:`variants` makes "the recipe without one ingredient" for each of them, and
:func:`ten_crop_predict` does the paper's test-time augmentation for a Keras or a PyTorch model.
:mod:`alexnet_lab.teaching.ablations` trains the variants and compares them.

Two choices made for short, fair comparisons:

* The paper's schedule divides the rate by 10 when the validation error stops improving; it would
  fire at different epochs in different runs, or not at all in a short run. ``schedule="step"``
  divides it once, for the last third of the epochs; ``schedule="onecycle"`` (what the short runs of
  notebooks 05 and 06 use, and :data:`SHORT_RUN`) warms up and then anneals it towards 0.
* "Without momentum" keeps the learning rate. With momentum 0.9 the steps add up to about
  1 / (1 - 0.9) = 10 times the gradient step, so plain SGD at the same rate moves 10 times less.

Example::

    from alexnet_lab.teaching import ablations, recipe
    ablation = ablations.run_ablation(train, test, recipe=recipe.SHORT_RUN, epochs=25, batch_size=128,
                                      leave_out=("augmentation", "dropout"), seeds=(0, 1, 2))
    print(ablation.table())
    result = recipe.ten_crop_predict(ablation.model(), test, ablation.preprocess())
    print(result.center_accuracy, result.ten_crop_accuracy)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.frameworks import evaluating, framework_of

__all__ = [
    "INGREDIENTS", "FULL_RECIPE", "SCHEDULES", "Recipe", "SHORT_RUN", "variants", "test_time_preprocess",
    "TenCropResult", "ten_crop_predict", "CROP_NAMES",
]

#: The six training ingredients, in the order the notebook introduces them, with what "off" means.
INGREDIENTS = {
    "momentum": "SGD momentum 0.9 (off: plain SGD, momentum 0, same learning rate)",
    "weight_decay": "weight decay 5e-4 added to the gradient (off: 0)",
    "schedule": "a falling learning rate: ÷ 10 for the last third of the epochs, or one-cycle (off: constant)",
    "dropout": "dropout 0.5 in fc6 and fc7 (off: no dropout layers)",
    "crops_flips": "random crops and left-right flips (off: every image as it is)",
    "pca_noise": "PCA colour noise with alpha ~ Normal(0, 0.1) (off: none)",
}

#: The learning-rate schedules a recipe can use (``None``: constant).
SCHEDULES = ("step", "onecycle")

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
        schedule: ``"step"`` (divide the learning rate by 10 for the last third of the epochs),
            ``"onecycle"`` (up to ``lr`` over the first 30 % of the steps, then down towards 0) or
            ``None`` (constant).
        nesterov: Nesterov momentum (not the paper's; notebooks 05 and 06 use it).
        dropout: dropout probability in fc6 and fc7 (paper: 0.5; 0 removes the layers).
        crops_flips: random crops (``crop_padding`` pixels each way) and left-right flips.
        pca_noise: the standard deviation of the PCA colour noise's alpha (paper: 0.1; 0 is off).
        crop_padding: how far a random crop may move; ``None``: the pipelines' default
            (4 pixels for 32×32 images, 16 for 227×227).
    """

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str | None = "step"
    dropout: float = 0.5
    crops_flips: bool = True
    pca_noise: float = 0.1
    crop_padding: int | None = None
    nesterov: bool = False

    def __post_init__(self):
        if self.schedule not in (*SCHEDULES, None):
            raise ValueError(f"Recipe.schedule must be one of {SCHEDULES} or None (constant). "
                             f"Received: schedule={self.schedule!r}.")
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
        off = {"momentum": {"momentum": 0.0, "nesterov": False}, "weight_decay": {"weight_decay": 0.0},
               "schedule": {"schedule": None}, "dropout": {"dropout": 0.0}, "crops_flips": {"crops_flips": False},
               "pca_noise": {"pca_noise": 0.0}, "augmentation": {"crops_flips": False, "pca_noise": 0.0}}
        if ingredient not in off:
            raise ValueError(f"Unknown ingredient {ingredient!r}; the ingredients are {', '.join(INGREDIENTS)} "
                             "(and augmentation: crops, flips and PCA noise together).")
        return dataclasses.replace(self, **off[ingredient])

    def ingredients(self) -> list[str]:
        """The ingredients that are on."""
        on = {"momentum": self.momentum > 0, "weight_decay": self.weight_decay > 0, "schedule": bool(self.schedule),
              "dropout": self.dropout > 0, "crops_flips": self.crops_flips, "pca_noise": self.pca_noise > 0}
        return [name for name in INGREDIENTS if on[name]]

    def step_every(self, epochs: int) -> int | None:
        """With ``schedule="step"``: after how many epochs the rate is divided by 10 (once), two thirds of
        ``epochs`` rounded up; otherwise None."""
        return max(1, math.ceil(2 * epochs / 3)) if self.schedule == "step" else None

    def fit_options(self, epochs: int) -> dict:
        """The keyword arguments of :func:`alexnet_lab.torch.training.fit` / :func:`alexnet_lab.keras.training.fit`."""
        return {"lr": self.lr, "optimizer": "sgd", "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, "schedule": self.schedule, "step_every": self.step_every(epochs)}

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
        schedule = {"step": "lr ÷ 10 for the last third", "onecycle": "one-cycle lr", None: "constant lr"}
        parts = [f"SGD lr {self.lr:g}", f"{'Nesterov ' if self.nesterov else ''}momentum {self.momentum:g}",
                 f"weight decay {self.weight_decay:g}", schedule[self.schedule], f"dropout {self.dropout:g}",
                 "crops + flips" if self.crops_flips else "no crops/flips",
                 f"PCA noise {self.pca_noise:g}" if self.pca_noise else "no PCA noise"]
        return ", ".join(parts)


#: The recipe notebook 07 trains: the paper's ingredients at settings that a 25-epoch run of a narrow compact
#: network with BatchNorm can use. Chosen with exploratory single runs of the half-width network on 2,000
#: CIFAR-10 images (bfloat16): the paper's ÷ 10 step reached 52.0 %, one-cycle 57.9 %; dropout 0.5 in the
#: 248-unit layers 53.1 %, 0.25 56.8 %. BatchNorm lets the rate peak at 0.1, ten times the paper's 0.01.
SHORT_RUN = Recipe(lr=0.1, nesterov=True, schedule="onecycle", dropout=0.25)


def variants(recipe: Recipe | None = None, leave_out: Sequence[str] = tuple(INGREDIENTS)) -> dict[str, Recipe]:
    """``{"full recipe": recipe, "without momentum": ..., ...}``: one ingredient off at a time."""
    recipe = recipe or Recipe()
    out = {FULL_RECIPE: recipe}
    for ingredient in leave_out:
        name = ingredient.replace("_", " ").replace("crops flips", "crops/flips").replace("pca", "PCA")
        out[f"without {name}"] = recipe.without(ingredient)
    return out


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
