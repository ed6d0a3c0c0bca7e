"""Training on your own images: look at the folder, fine-tune a trained model, save it, classify one file.

The steps of notebook 08, each for a Keras model or a PyTorch module alike:

* :func:`folder_tree` shows what an image folder holds (``train/cat/00000.jpg`` ...);
* :func:`keep_classes` takes some classes of a data set, numbered ``0 .. k-1`` (e.g. the 8
  CIFAR-10 classes that are neither cats nor dogs, to pre-train on);
* :func:`copy_weights` copies every layer but the classifier from a trained model into a new one
  with a different number of classes, and :func:`freeze` stops the convolutions from training:
  the two steps of fine-tuning;
* :func:`save_model` writes a model to disk without ever leaving a half-written file, and
  :func:`save_preprocess` the normalization statistics and class names that go with it;
* :func:`predict_image` classifies one image file, preprocessed exactly as the training images were.

This module imports neither TensorFlow nor PyTorch until a model of that framework is passed in.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_lab.core.files import atomic_path, atomic_write_json
from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.frameworks import evaluating, framework_of, input_shape

__all__ = [
    "CONV_LAYERS", "keep_classes", "folder_tree", "load_image", "ImagePrediction", "predict_image",
    "copy_weights", "freeze", "parameter_counts", "save_model", "save_preprocess", "load_preprocess",
]

#: The convolutional layers of every AlexNet preset: the "features" that fine-tuning keeps frozen.
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def keep_classes(data: ImageSet, classes: Sequence[str], *, name: str | None = None) -> ImageSet:
    """The images of ``classes`` only, relabelled ``0 .. len(classes) - 1`` in the order given.

    Example: ``keep_classes(cifar_train, ["cat", "dog"])`` has labels 0 (cat) and 1 (dog).
    """
    unknown = [c for c in classes if c not in data.classes]
    if unknown:
        raise ValueError(f"Unknown class(es) {unknown}; {data.name or 'the data'} has {list(data.classes)}.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"Each class may be named once, got {list(classes)}.")
    old = np.array([data.classes.index(c) for c in classes])
    keep = np.flatnonzero(np.isin(data.labels, old))
    relabel = np.full(len(data.classes), -1, dtype=np.int64)
    relabel[old] = np.arange(len(classes))
    return ImageSet(data.images[keep], relabel[data.labels[keep]], tuple(classes),
                    data.name if name is None else name)


def folder_tree(path: str | os.PathLike, *, max_files: int = 3) -> str:
    """A text picture of an image folder: its sub-folders, how many files each holds, the first few names."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder.")
    lines = [f"{root.name}/"]

    def walk(folder: Path, prefix: str) -> None:
        folders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for i, sub in enumerate(folders):
            last = i == len(folders) - 1
            files = sorted(p.name for p in sub.iterdir() if p.is_file() and not p.name.startswith("."))
            shown = ""
            if files:
                more = ", ..." if len(files) > max_files else ""
                shown = f"  {len(files):,} file{'s' if len(files) != 1 else ''}: {', '.join(files[:max_files])}{more}"
            lines.append(f"{prefix}{'└── ' if last else '├── '}{sub.name}/{shown}")
            walk(sub, prefix + ("    " if last else "│   "))

    walk(root, "")
    return "\n".join(lines)


def load_image(path: str | os.PathLike, *, image_size: int | None = None, channels: int = 3) -> np.ndarray:
    """One image file as a uint8 array ``(H, W, channels)``, decoded as :func:`alexnet_lab.data.load_image_folder` does.

    RGB whatever the file holds (grayscale copied, transparency over white, phone photos turned
    upright); with ``image_size`` the centre is cropped to a square and resized to
    ``image_size × image_size``; ``channels=1`` converts to grayscale.
    """
    from alexnet_lab import data

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}.")
    image = data.decode_images([path], image_size)[0]   # the folder loader's own decoding: same pixels
    if channels == 1:
        from PIL import Image

        image = np.asarray(Image.fromarray(image).convert("L"))[..., None]
    return image


# --------------------------------------------------------------------------------------------
# Predicting one image
# --------------------------------------------------------------------------------------------

@dataclass
class ImagePrediction:
    """What a model says about one image file."""

    path: Path
    image: np.ndarray           # the uint8 image as loaded, before normalization
    probabilities: np.ndarray   # softmax over the classes
    classes: tuple[str, ...]

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.classes[int(self.probabilities.argmax())]

    @property
    def probability(self) -> float:
        """The probability of the most probable class."""
        return float(self.probabilities.max())

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes with their probabilities."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]  # ties keep class order, as argmax does
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    def __repr__(self) -> str:
        return f"ImagePrediction({self.path.name}: {self.label}, {self.probability:.1%})"


def predict_image(model, path: str | os.PathLike, preprocess: preprocessing.Preprocess, classes: Sequence[str], *,
                  image_size: int | None = None) -> ImagePrediction:
    """Classify one image file with a trained Keras or PyTorch model.

    The file goes through the same steps as the training images: decoded and resized by
    :func:`load_image`, then scaled, normalized with the training statistics and (for
    ``crop="resize"``) centre-cropped by ``preprocess.without_augmentation()``, in the same
    pipeline code that fed the model during training, and classified by the framework's
    ``training.predict`` in evaluation mode (the model's own mode is restored afterwards).

    Args:
        model: a trained model that returns logits.
        path: the image file (JPEG, PNG, ...).
        preprocess: the training :class:`~alexnet_lab.data.preprocessing.Preprocess` (its statistics are reused).
        classes: the class names, in label order (e.g. ``train.classes``).
        image_size: the size the training images were loaded at (``load_image_folder(image_size=...)``);
            default: the model's input size.
    """
    h, w, c = input_shape(model)
    if len(classes) < 2:
        raise ValueError(f"classes must name at least two classes, got {list(classes)}.")
    image = load_image(path, image_size=image_size or h, channels=c)
    single = ImageSet(image[None], np.zeros(1, dtype=np.int64), tuple(classes), Path(path).name)
    test_time = preprocess.without_augmentation()
    if framework_of(model) == "torch":
        from alexnet_lab.torch import pipeline, training
    else:
        from alexnet_lab.keras import pipeline, training
    with evaluating(model):  # the same pipeline and prediction code as the test images
        probabilities, _ = training.predict(model, pipeline.make_batches(single, test_time, batch_size=1))
    if probabilities.shape[1] != len(classes):
        raise ValueError(f"The model has {probabilities.shape[1]} outputs but {len(classes)} class names were given.")
    return ImagePrediction(Path(path), image, probabilities[0], tuple(classes))


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------

def _torch_layers(model) -> dict:
    from torch import nn

    return {name: module for name, module in model.named_children()
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))}


def _keras_layers(model) -> dict:
    return {layer.name: layer for layer in model.layers if layer.weights}


def copy_weights(source, target, *, skip: Sequence[str] = ("fc8",)) -> list[str]:
    """Copy the weights of every layer of ``source`` into the layer of the same name of ``target``, except ``skip``.

    Both models must come from the same framework and the same preset (so that the layers match);
    they may differ in the layers skipped, typically the classifier ``fc8`` when the new task has
    another number of classes. Every shape is checked before anything is copied. Returns the
    names of the layers copied.
    """
    frameworks = framework_of(source), framework_of(target)
    if frameworks[0] != frameworks[1]:
        raise TypeError(f"copy_weights copies within one framework, got a {frameworks[0]} and a {frameworks[1]} "
                        "model; alexnet_lab.teaching.transfer copies between Keras and PyTorch.")
    layers_of = _torch_layers if frameworks[0] == "torch" else _keras_layers
    src, dst = layers_of(source), layers_of(target)
    names = [n for n in dst if n not in skip]
    missing = [n for n in names if n not in src]
    if missing:
        raise ValueError(f"The source model has no layer(s) {missing}; build both models from the same preset.")
    plan = []
    for name in names:
        if frameworks[0] == "torch":
            new, old = src[name].state_dict(), dst[name].state_dict()
            got, want = {k: tuple(v.shape) for k, v in new.items()}, {k: tuple(v.shape) for k, v in old.items()}
        else:
            new = src[name].get_weights()
            got, want = [w.shape for w in new], [w.shape for w in dst[name].get_weights()]
        if got != want:
            raise ValueError(f"Layer {name!r}: the source's weights have shapes {got}, the target's {want}. Build both "
                             f"models with the same preset and image size, or add {name!r} to skip=.")
        plan.append((name, new))
    for name, weights in plan:
        if frameworks[0] == "torch":
            dst[name].load_state_dict(weights)
        else:
            dst[name].set_weights(weights)
    return names


def freeze(model, layers: Sequence[str] = CONV_LAYERS) -> list[str]:
    """Stop ``layers`` (default: the five convolutions) from training; returns their names.

    Keras: ``layer.trainable = False`` (before ``compile``, which :func:`alexnet_lab.keras.training.fit` calls);
    PyTorch: ``requires_grad_(False)`` on the layer's parameters, so they get no gradients and
    the optimizer leaves them alone (weight decay included).
    """
    found = _torch_layers(model) if framework_of(model) == "torch" else _keras_layers(model)
    missing = [n for n in layers if n not in found]
    if missing:
        raise ValueError(f"The model has no layer(s) {missing}; its layers with weights are {list(found)}.")
    for name in layers:
        if framework_of(model) == "torch":
            found[name].requires_grad_(False)
        else:
            found[name].trainable = False
    return list(layers)


def parameter_counts(model) -> dict[str, int]:
    """``{"trainable": ..., "frozen": ...}``: how many parameters training will change, and how many it won't."""
    if framework_of(model) == "torch":
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    else:
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        frozen = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    return {"trainable": trainable, "frozen": frozen}


def save_model(model, path: str | os.PathLike) -> Path:
    """Save a model atomically: ``model.save(path)`` for Keras, ``torch.save(model.state_dict(), path)`` for PyTorch.

    The file is written under a temporary name in the same folder and renamed when complete, so
    a failed save (full disk, Ctrl-C) leaves the previous file, or none, never a broken one.
    Keras files must end in ``.keras`` (the whole model: architecture, weights, optimizer state);
    PyTorch files hold the weights only (load them into a model built the same way with
    ``model.load_state_dict(torch.load(path, weights_only=True))``). Returns the path.
    """
    path = Path(path)
    keras_model = framework_of(model) == "keras"
    if keras_model and path.suffix != ".keras":
        raise ValueError(f"Keras 3 saves whole models to .keras files; got {path.name!r}. Use e.g. {path.stem}.keras.")
    with atomic_path(path) as tmp:
        if keras_model:
            model.save(tmp)
        else:
            import torch

            torch.save(model.state_dict(), tmp)
    return path


def save_preprocess(path: str | os.PathLike, preprocess: preprocessing.Preprocess, classes: Sequence[str]) -> Path:
    """Write what a saved model needs besides its weights: the preprocessing and the class names, as JSON.

    A model file holds no normalization statistics and no class names, yet predicting needs both
    (:func:`predict_image`). Written atomically, like :func:`save_model`. Returns the path.
    """
    path = Path(path)
    atomic_write_json(path, {"preprocess": dataclasses.asdict(preprocess), "classes": list(classes)})
    return path


def load_preprocess(path: str | os.PathLike) -> tuple[preprocessing.Preprocess, tuple[str, ...]]:
    """Read a file written by :func:`save_preprocess`: ``(preprocess, classes)``."""
    path = Path(path)
    try:
        saved = json.loads(path.read_text())
        preprocess = preprocessing.Preprocess(**saved["preprocess"])
        classes = tuple(saved["classes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a preprocessing file written by save_preprocess ({e}).") from e
    return preprocess, classes
