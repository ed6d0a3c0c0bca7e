"""Preprocessing and augmentation, planned without a framework: what is done to each image, and every random choice.

Read this module first; the input pipelines that apply it are short, one per framework:
:func:`alexnet_lab.torch.pipeline.make_batches` (a PyTorch ``DataLoader``) and
:func:`alexnet_lab.keras.pipeline.make_batches` (a ``tf.data.Dataset``). Importing this module
imports neither framework.

What is done to an image, written in the order it is easiest to think about:

* **scale**: uint8 0-255 becomes float32 0-1.
* **PCA colour noise** (training only, the paper's "lighting"): every pixel of an image gets the same
  RGB shift ``eigvecs @ (alpha * eigvals)``, where ``eigvals``/``eigvecs`` are the eigenvalues and
  eigenvectors of the training set's RGB covariance (pixels in 0-1) and ``alpha ~ Normal(0, lighting_std)``
  is drawn once per image (paper: ``lighting_std=0.1``).
* **normalize**: ``(x - mean) / std`` per channel, with the training set's statistics.
* **resize** (bilinear, on the fly): to ``image_size`` (Fashion-MNIST 28 -> 227), or to
  ``image_size + 2 * crop_padding`` when the crop scheme is ``"resize"``.
* **random crop** (training only), one of two schemes:

  * ``crop="pad"``: pad ``crop_padding`` pixels on every side and cut a random ``image_size``
    window (the usual CIFAR-10 recipe: pad 4, crop 32). The padding is 0 after normalization, that is,
    the training set's mean colour. At test time: the image itself.
  * ``crop="resize"``: resize to a slightly larger "canvas" and cut a random ``image_size`` window
    (the paper: 256×256 images, random 224×224 crops; here 259 -> 227 with ``crop_padding=16``).
    At test time: the centre window of the canvas, so objects keep the size seen in training.
* **horizontal flip** (training only) of half of the images.

The pipelines do the per-pixel arithmetic (scale, colour noise, normalize) first, on the small stored
images: a bilinear resize is a weighted average whose weights sum to 1, so adding or multiplying by
per-channel constants before or after it gives the same result (up to float rounding), and before it
there are 66 times fewer pixels for Fashion-MNIST at 227×227.

Identical batches in both frameworks: every random choice (the shuffled order, crop offsets, flips,
colour shifts) is drawn with NumPy from ``np.random.default_rng((seed, epoch))`` into a framework-free
:class:`BatchPlan`. A crop and a flip are both just a choice of which rows and columns of the canvas to
read, so a plan stores those index arrays; each framework then applies the plan with its own ops.
Bilinear resizing agrees between ``torch.nn.functional.interpolate(align_corners=False)`` and
``tf.image.resize`` to about 1e-6, for upsampling and for downsampling (both antialias when they
shrink an image, and neither needs to when it grows).

Memory stays bounded: only the uint8 images are held; each batch is made when it is needed. The full
Fashion-MNIST training set at 227×227 in float32 would need 60,000 × 227 × 227 × 4 bytes = 12.4 GB
(37 GB for three channels); a batch of 64 needs 13 MB.

Example::

    from alexnet_lab.data import preprocessing
    from alexnet_lab.keras import pipeline as keras_pipeline
    from alexnet_lab.torch import pipeline as torch_pipeline
    pre = preprocessing.Preprocess.for_training(train, image_size=227)       # statistics from train
    loader = torch_pipeline.make_batches(train, pre, batch_size=64, seed=0)   # or keras_pipeline.make_batches(...)
    test_loader = torch_pipeline.make_batches(test, pre.without_augmentation(), batch_size=256)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from alexnet_lab.core.cluster import per_process_batch_size, shard
from alexnet_lab.data import ImageSet

__all__ = [
    "Preprocess", "Geometry", "BatchPlan", "channel_stats", "pca_lighting_basis", "batch_plans", "num_batches",
    "ten_crops", "CROP_SCHEMES",
]

CROP_SCHEMES = ("pad", "resize")


@dataclass(frozen=True)
class Geometry:
    """The sizes one image goes through, worked out from the source size and a :class:`Preprocess`.

    Attributes:
        source: ``(H, W)`` of the stored images.
        resize_to: ``(H, W)`` to resize to, or ``None`` when the images keep their size.
        pad: zero pixels added on every side after resizing.
        output: ``(H, W)`` of the images the model sees.
        max_offset: crops start at rows/columns ``0 .. max_offset`` of the (resized, padded) canvas.
    """

    source: tuple[int, int]
    resize_to: tuple[int, int] | None
    pad: int
    output: tuple[int, int]
    max_offset: int


@dataclass(frozen=True)
class Preprocess:
    """What to do to every image on its way to the model (see the module docstring for the order).

    Attributes:
        image_size: height and width of the images the model sees; ``None`` keeps the stored size.
        mean, std: per-channel statistics in 0-1 units for ``(x - mean) / std``; ``None`` leaves
            the pixels in 0-1. Compute them with :func:`channel_stats` on the training set.
        augment: the master switch for the random crop, flip and colour noise (training: ``True``).
        crop: ``"pad"`` or ``"resize"``, the random-crop scheme (see the module docstring).
        crop_padding: how many pixels a crop may move away from the centre, in each direction;
            0 turns random crops off.
        flip: flip half of the images left-right (when ``augment``).
        lighting_std: standard deviation of the PCA colour noise's ``alpha`` (paper: 0.1); 0 turns it off.
        eigvals, eigvecs: the training set's colour covariance, from :func:`pca_lighting_basis`
            (``eigvecs[:, i]`` is the eigenvector of ``eigvals[i]``); needed when ``lighting_std > 0``.
    """

    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False
    crop: str = "pad"
    crop_padding: int = 0
    flip: bool = False
    lighting_std: float = 0.0
    eigvals: tuple[float, ...] | None = None
    eigvecs: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self):
        # Store plain tuples of floats (hashable, printable) whatever sequence or array was passed in.
        for name in ("mean", "std", "eigvals"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in np.ravel(value)))
        if self.eigvecs is not None:
            object.__setattr__(self, "eigvecs", tuple(tuple(float(v) for v in row) for row in np.asarray(self.eigvecs)))
        self._check()

    def _check(self) -> None:
        if self.image_size is not None and (int(self.image_size) != self.image_size or self.image_size < 1):
            raise ValueError(f"Preprocess.image_size must be a positive integer or None, got {self.image_size!r}.")
        if self.crop not in CROP_SCHEMES:
            raise ValueError(f"Preprocess.crop must be one of {CROP_SCHEMES}, got {self.crop!r}.")
        if int(self.crop_padding) != self.crop_padding or self.crop_padding < 0:
            raise ValueError(f"Preprocess.crop_padding must be an integer >= 0, got {self.crop_padding!r}.")
        if (self.mean is None) != (self.std is None):
            raise ValueError("Preprocess needs both mean and std (or neither); compute them with channel_stats(train).")
        if self.mean is not None and len(self.mean) != len(self.std):
            raise ValueError(f"Preprocess.mean has {len(self.mean)} channels but std has {len(self.std)}.")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"Preprocess.std must be positive, got {self.std}: a constant channel cannot be "
                             "normalized; pass std=1 for it.")
        if self.lighting_std < 0:
            raise ValueError(f"Preprocess.lighting_std must be >= 0, got {self.lighting_std}.")
        if self.lighting_std > 0:
            if self.eigvals is None or self.eigvecs is None:
                raise ValueError("Preprocess.lighting_std > 0 needs eigvals and eigvecs: compute them with "
                                 "pca_lighting_basis(train), or use Preprocess.for_training(train, ...).")
            c = len(self.eigvals)
            if np.shape(self.eigvecs) != (c, c):
                raise ValueError(f"Preprocess.eigvecs must be {c}×{c} for {c} eigenvalues, got {np.shape(self.eigvecs)}.")

    @classmethod
    def for_training(cls, train: ImageSet, *, image_size: int | None = None, crop: str | None = None,
                     crop_padding: int | None = None, flip: bool = True, lighting_std: float = 0.1,
                     seed: int = 0) -> Preprocess:
        """The paper's training preprocessing, with statistics computed from the training set ``train``.

        Defaults: ``crop="resize"`` when the images are resized (``image_size`` differs from the stored
        size), otherwise ``crop="pad"``; ``crop_padding`` is 1/14 of the output size for ``"resize"``
        (16 pixels at 227, the paper's 256 -> 224 ratio) and 1/8 for ``"pad"`` (4 pixels at 32, the
        usual CIFAR-10 choice). Use :meth:`without_augmentation` for the matching test-time preprocessing.
        """
        h, w = train.shape[:2]
        resized = image_size is not None and (image_size, image_size) != (h, w)
        if crop is None:
            crop = "resize" if resized else "pad"
        if crop_padding is None:
            size = image_size or min(h, w)
            crop_padding = max(1, round(size / 14)) if crop == "resize" else max(1, size // 8)
        mean, std = channel_stats(train)
        eigvals, eigvecs = pca_lighting_basis(train, seed=seed)
        return cls(image_size=image_size, mean=mean, std=std, augment=True, crop=crop, crop_padding=crop_padding,
                   flip=flip, lighting_std=lighting_std, eigvals=eigvals, eigvecs=eigvecs)

    def without_augmentation(self) -> Preprocess:
        """The same resizing and normalization, without random crops, flips or colour noise (for testing)."""
        return dataclasses.replace(self, augment=False)

    @property
    def channels(self) -> int | None:
        """The number of channels the statistics were computed for (``None`` if there are none)."""
        for values in (self.mean, self.eigvals):
            if values is not None:
                return len(values)
        return None

    def geometry(self, source_hw: tuple[int, int]) -> Geometry:
        """The sizes an image of ``source_hw = (H, W)`` goes through (see :class:`Geometry`)."""
        source = (int(source_hw[0]), int(source_hw[1]))
        output = (self.image_size, self.image_size) if self.image_size else source
        p = self.crop_padding
        if self.crop == "resize":
            canvas = (output[0] + 2 * p, output[1] + 2 * p)
            pad = 0
        else:
            canvas = output
            pad = p if self.augment else 0
        resize_to = None if canvas == source else canvas
        max_offset = 2 * p if (self.crop == "resize" or self.augment) else 0
        return Geometry(source=source, resize_to=resize_to, pad=pad, output=output, max_offset=max_offset)

    def check_fits(self, data: ImageSet) -> None:
        """Raise a ``ValueError`` saying what to do when this preprocessing does not fit ``data``'s images."""
        c = data.shape[2]
        if self.channels is not None and self.channels != c:
            raise ValueError(
                f"This Preprocess has statistics for {self.channels} channel(s) but {data!r} has {c}: compute them "
                f"from a training set with the same channels, e.g. Preprocess.for_training(train, ...).")
        if self.eigvals is not None and self.mean is not None and len(self.eigvals) != len(self.mean):
            raise ValueError(f"Preprocess has mean for {len(self.mean)} channels but eigvals for {len(self.eigvals)}.")


# --------------------------------------------------------------------------------------------
# Statistics of the training set
# --------------------------------------------------------------------------------------------

def channel_stats(data: ImageSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of all pixels of ``data``, in 0-1 units (exact).

    Counting how many pixels have each of the 256 values (``np.bincount``) makes this exact and fast,
    with no float copy of the images.
    """
    if len(data) == 0:
        raise ValueError(f"Cannot compute channel statistics of an empty ImageSet ({data!r}).")
    channels = data.shape[2]
    counts = np.zeros((channels, 256), np.int64)
    for start in range(0, len(data), 4096):       # a few thousand images at a time: small temporary arrays
        chunk = data.images[start:start + 4096]
        for c in range(channels):
            counts[c] += np.bincount(chunk[..., c].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    means, stds = [], []
    for c in range(channels):
        mean = (counts[c] * values).sum() / counts[c].sum()
        var = (counts[c] * (values - mean) ** 2).sum() / counts[c].sum()
        means.append(float(mean))
        stds.append(float(math.sqrt(var)))
    return tuple(means), tuple(stds)


def pca_lighting_basis(data: ImageSet, *, max_pixels: int = 1_000_000,
                       seed: int = 0) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """Eigenvalues (largest first) and eigenvectors of the covariance of ``data``'s pixel colours, in 0-1 units.

    This is the basis of the paper's PCA colour augmentation. The covariance is computed from
    ``max_pixels`` pixels drawn at random (reproducibly, from ``seed``), or from all pixels when there
    are fewer. Returns ``(eigvals, eigvecs)`` with ``eigvecs[:, i]`` the unit eigenvector of ``eigvals[i]``.
    For 1-channel images this is simply the pixel variance and ``((1.0,),)``.
    """
    n, h, w, c = data.images.shape
    if n == 0:
        raise ValueError(f"Cannot compute a colour covariance of an empty ImageSet ({data!r}).")
    pixels = data.images.reshape(-1, c)          # a view: one row per pixel
    if len(pixels) > max_pixels:
        rng = np.random.default_rng(seed)
        pixels = pixels[rng.choice(len(pixels), size=max_pixels, replace=False)]
    pixels = pixels.astype(np.float64) / 255.0
    cov = np.atleast_2d(np.cov(pixels, rowvar=False, bias=True))
    eigvals, eigvecs = np.linalg.eigh(cov)        # ascending order
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0.0, None)  # tiny negative values are rounding errors
    eigvecs = eigvecs[:, order]
    return tuple(float(v) for v in eigvals), tuple(tuple(float(v) for v in row) for row in eigvecs)


# --------------------------------------------------------------------------------------------
# The framework-free plan: every random choice, drawn with NumPy
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchPlan:
    """Everything random about one batch, decided before any framework sees it.

    Attributes:
        indices: ``(B,)`` which images of the data set, in batch order.
        rows: ``(B, out_H)`` int32: output row ``i`` of image ``b`` is row ``rows[b, i]`` of the canvas
            (the resized, padded image). A crop is a run of consecutive rows.
        cols: ``(B, out_W)`` int32: the same for columns; a flipped image reads its columns backwards.
        color_shift: ``(B, C)`` float32 in 0-1 units, added to every pixel of the image (PCA colour noise).
    """

    indices: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    color_shift: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


def num_batches(num_images: int, batch_size: int, drop_last: bool = False, *, rank: int = 0,
                world_size: int = 1) -> int:
    """How many batches one epoch has (for process ``rank`` of ``world_size``: see :func:`batch_plans`)."""
    _check_split(batch_size, rank, world_size, drop_last)
    full, rest = divmod(num_images, batch_size)
    if rest and not drop_last:
        part = shard(rest, rank, world_size)  # a last batch smaller than world_size leaves some processes out
        full += part.stop > part.start
    return full


def _check_split(batch_size: int, rank: int = 0, world_size: int = 1, drop_last: bool = False) -> None:
    """Raise a ``ValueError`` saying what to change when batches of ``batch_size`` cannot be shared this way.

    ``rank`` must lie in ``0 .. world_size - 1``; with ``drop_last`` (training) the batch must split
    evenly over the ``world_size`` processes, so that every process takes the same share of every
    step (a smaller last batch would be averaged with unequal weights, and a process left without
    images would stop the others).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    shard(0, rank, world_size)  # raises if the rank does not lie in 0..world_size-1
    if drop_last and world_size > 1:
        per_process_batch_size(batch_size, world_size)  # raises if the batch does not split evenly


def batch_plans(num_images: int, geometry: Geometry, preprocess: Preprocess, channels: int, *,
                batch_size: int = 64, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                drop_last: bool = False, rank: int = 0, world_size: int = 1) -> Iterator[BatchPlan]:
    """The plans of the batches of one epoch: the same ``(seed, epoch)`` always gives the same plans.

    All random numbers of the epoch are drawn at once, per image, from ``np.random.default_rng((seed, epoch))``:
    first the order, then the crop offsets, the flips and the colour-noise ``alpha`` s.

    Distributed training (``world_size`` processes, see ``docs/distributed.md``): ``batch_size`` is
    the *global* batch, and process ``rank`` gets its contiguous part of every global batch
    (:func:`alexnet_lab.core.cluster.shard`). Every process draws the same global plans, so the
    batches, augmentation included, are the same for any number of processes; the parts of all
    processes, in rank order, are the plans of ``world_size=1``. A last batch smaller than
    ``world_size`` leaves some processes without a part: they get one batch fewer.
    """
    _check_split(batch_size, rank, world_size, drop_last)
    rng = np.random.default_rng((seed, epoch))
    order = rng.permutation(num_images) if shuffle else np.arange(num_images)

    augment = preprocess.augment
    if augment and geometry.max_offset > 0:
        top = rng.integers(0, geometry.max_offset + 1, size=num_images)
        left = rng.integers(0, geometry.max_offset + 1, size=num_images)
    else:  # the centre of the canvas
        top = left = np.full(num_images, geometry.max_offset // 2)
    flipped = (rng.random(num_images) < 0.5) if (augment and preprocess.flip) else np.zeros(num_images, bool)
    shift = np.zeros((num_images, channels), np.float32)
    if augment and preprocess.lighting_std > 0:
        alphas = rng.normal(0.0, preprocess.lighting_std, size=(num_images, channels))
        # The paper: add eigvecs @ (alpha * eigvals) to every pixel of the image.
        shift = ((alphas * np.asarray(preprocess.eigvals)) @ np.asarray(preprocess.eigvecs).T).astype(np.float32)

    out_h, out_w = geometry.output
    for b in range(num_batches(num_images, batch_size, drop_last)):
        at = slice(b * batch_size, (b + 1) * batch_size)  # positions in this epoch's order
        rows = top[at, None] + np.arange(out_h)
        cols = left[at, None] + np.arange(out_w)
        cols = np.where(flipped[at, None], cols[:, ::-1], cols)
        plan = BatchPlan(indices=order[at], rows=rows.astype(np.int32), cols=cols.astype(np.int32),
                         color_shift=shift[at])
        if world_size > 1:
            part = shard(len(plan), rank, world_size)
            plan = BatchPlan(indices=plan.indices[part], rows=plan.rows[part], cols=plan.cols[part],
                             color_shift=plan.color_shift[part])
        if len(plan):
            yield plan


# --------------------------------------------------------------------------------------------
# Test-time augmentation
# --------------------------------------------------------------------------------------------

def ten_crops(images, size: int, *, channels_first: bool = False):
    """The paper's test-time augmentation: the four corner crops and the centre crop, and their mirror images.

    ``images`` is a batch, ``(B, H, W, C)`` or with ``channels_first=True`` ``(B, C, H, W)``: a NumPy
    array, or any array that slices like one; a PyTorch tensor and a TensorFlow tensor both do (this
    function imports neither framework). Returns a list of 10 batches of ``size × size`` crops, in the
    order top-left, top-right, bottom-left, bottom-right, centre, then the same five flipped, of the
    type given. Average the model's softmax over the ten to classify. To make the larger images these
    crops come from, use the training ``Preprocess`` with ``crop="resize"`` like this:
    ``dataclasses.replace(pre, image_size=pre.image_size + 2 * pre.crop_padding, crop_padding=0, augment=False)``.
    """
    h_axis, w_axis = (2, 3) if channels_first else (1, 2)
    h, w = images.shape[h_axis], images.shape[w_axis]
    if size > h or size > w:
        raise ValueError(f"ten_crops: crops of {size}×{size} do not fit in images of {h}×{w}.")
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    crops = []
    for top, left in corners:
        window = [slice(None)] * 4
        window[h_axis], window[w_axis] = slice(top, top + size), slice(left, left + size)
        crops.append(images[tuple(window)])
    return crops + [_flip_left_right(crop, w_axis) for crop in crops]


def _flip_left_right(images, axis: int):
    """Mirror a batch along its width ``axis``, without importing a framework.

    An array with a ``flip`` method (a PyTorch tensor, which cannot be sliced backwards) uses it;
    any other (a NumPy array, a TensorFlow tensor) is read backwards with a reversed slice.
    """
    if callable(getattr(images, "flip", None)):
        return images.flip(axis)
    window = [slice(None)] * 4
    window[axis] = slice(None, None, -1)
    try:
        return images[tuple(window)]
    except (TypeError, ValueError, IndexError) as e:
        raise TypeError(f"ten_crops needs a batch that slices like a NumPy array (a NumPy array, a PyTorch or "
                        f"TensorFlow tensor), got {type(images).__name__}: {e}") from None
