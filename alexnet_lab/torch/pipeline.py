"""The PyTorch side of :mod:`alexnet_lab.data.preprocessing`: apply a framework-free batch plan with torch ops.

Use it through :func:`alexnet_lab.torch.pipeline.make_batches`. The pieces are the standard ones:

* :class:`EpochSampler` (a ``Sampler``) hands out one :class:`~alexnet_lab.data.preprocessing.BatchPlan` per batch;
  every new pass over it is a new epoch. In distributed training it is also the distributed sampler:
  process ``rank`` of ``world_size`` gets its part of every global batch.
* :class:`PlannedBatches` (a ``Dataset``) turns a plan into ``(x, y)`` tensors; in a worker process when
  the ``DataLoader`` has ``num_workers > 0``.
* ``DataLoader(..., batch_size=None)``: our dataset already returns whole batches.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from alexnet_lab.data import ImageSet
from alexnet_lab.data.preprocessing import BatchPlan, Geometry, Preprocess, batch_plans, num_batches

__all__ = ["make_batches", "apply_plan", "EpochSampler", "PlannedBatches"]


def apply_plan(images: np.ndarray, plan: BatchPlan, geometry: Geometry, preprocess: Preprocess) -> torch.Tensor:
    """Turn uint8 images ``(B, H, W, C)`` into the float32 batch ``(B, C, H', W')`` that ``plan`` describes.

    :func:`alexnet_lab.keras.pipeline.apply_plan` does the same steps with TensorFlow ops.
    """
    # Per-pixel arithmetic on the small stored images, channels-last: (B, H, W, C).
    x = torch.from_numpy(images).to(torch.float32) / 255.0
    x = x + torch.from_numpy(plan.color_shift)[:, None, None, :]
    if preprocess.mean is not None:
        x = (x - torch.tensor(preprocess.mean)) / torch.tensor(preprocess.std)
    # Resize and pad: F.interpolate and F.pad work on (B, C, H, W).
    x = x.permute(0, 3, 1, 2)
    if geometry.resize_to is not None:
        shrinking = geometry.resize_to[0] < geometry.source[0] or geometry.resize_to[1] < geometry.source[1]
        x = F.interpolate(x, size=geometry.resize_to, mode="bilinear", align_corners=False, antialias=shrinking)
    if geometry.pad:
        p = geometry.pad
        x = F.pad(x, (p, p, p, p))
    # Crop and flip in one step: pick the plan's rows and columns for every image.
    x = x.permute(0, 2, 3, 1)                                   # (B, H, W, C)
    batch = torch.arange(len(plan))[:, None, None]
    rows = torch.from_numpy(plan.rows).long()[:, :, None]
    cols = torch.from_numpy(plan.cols).long()[:, None, :]
    x = x[batch, rows, cols]                                    # (B, H', W', C)
    return x.permute(0, 3, 1, 2)                                # (B, C, H', W'), channels-last in memory


class EpochSampler(Sampler):
    """Yields the :class:`BatchPlan` of each batch; each pass (``iter``) is the next epoch.

    ``batch_size`` is the *global* batch. With ``world_size`` processes (distributed training),
    process ``rank`` gets its part of every global batch: every process draws the plans of the
    global batches from ``(seed, epoch)``, as a single process would, and keeps its slice of each
    (see :func:`~alexnet_lab.data.preprocessing.batch_plans`). The global batches, augmentation
    included, are then the same for any number of processes: only dropout masks depend on how the
    batch is split. (``torch.utils.data.DistributedSampler`` would instead give each process every
    ``world_size``-th *image* of a shuffled order, with its own augmentation.) With ``world_size=1``
    the sampler hands out the whole batches.

    ``set_epoch(k)`` chooses the next pass's epoch (DDP's usual ``sampler.set_epoch``). Train with
    ``drop_last=True``: every step then has exactly the global batch, split evenly.
    """

    def __init__(self, num_images: int, geometry: Geometry, preprocess: Preprocess, channels: int, *,
                 batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1):
        self.num_images = num_images
        self.geometry = geometry
        self.preprocess = preprocess
        self.channels = channels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        # Also checks the arguments now, not at the first batch (a rank out of range, a batch that does not split).
        self._len = num_batches(num_images, batch_size, drop_last, rank=rank, world_size=world_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``."""
        self.epoch = epoch

    def __iter__(self):
        # A generator: the epoch counts up when the first batch is asked for, not when ``iter()`` is
        # called (a DataLoader with workers calls it twice and uses only the second iterator).
        epoch = self.epoch
        self.epoch += 1
        yield from batch_plans(self.num_images, self.geometry, self.preprocess, self.channels,
                               batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                               drop_last=self.drop_last, rank=self.rank, world_size=self.world_size)

    def __len__(self) -> int:
        return self._len


class PlannedBatches(Dataset):
    """A map-style dataset whose "index" is a whole :class:`BatchPlan`; it returns ``(x, y)`` for the batch."""

    def __init__(self, data: ImageSet, preprocess: Preprocess, geometry: Geometry, channels_last: bool):
        self.data = data
        self.preprocess = preprocess
        self.geometry = geometry
        self.channels_last = channels_last

    def __getitem__(self, plan: BatchPlan):
        x = apply_plan(self.data.images[plan.indices], plan, self.geometry, self.preprocess)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        y = torch.from_numpy(self.data.labels[plan.indices].astype(np.int64))
        return x, y

    def __len__(self) -> int:
        return len(self.data)


def make_batches(data: ImageSet, preprocess: Preprocess, *, batch_size: int = 64, shuffle: bool | None = None,
                 seed: int = 0, drop_last: bool = False, channels_last: bool = False, num_workers: int = 0,
                 rank: int = 0, world_size: int = 1) -> DataLoader:
    """A ``torch.utils.data.DataLoader`` of ``(x, y)``: float32 images ``(B, C, H, W)`` and int64 labels ``(B,)``.

    Every pass over the loader is a new epoch (0, 1, 2, ...), with its own order and augmentation;
    ``loader.sampler.set_epoch(k)`` chooses the next one. ``len(loader)`` is the number of batches.

    Args:
        shuffle: a new random order every epoch; default: ``preprocess.augment`` (training sets yes,
            test sets no).
        seed: with the epoch, fixes every random choice; :func:`alexnet_lab.keras.pipeline.make_batches`
            gives the same batches.
        drop_last: leave out the last, smaller batch.
        channels_last: keep the images in channels-last memory order (the tensor is still indexed
            ``(B, C, H, W)``; some CPUs run convolutions faster this way).
        num_workers: processes that prepare batches ahead of the training loop (0: in the main process).
        rank, world_size: distributed training (``torchrun``, see :mod:`alexnet_lab.torch.distributed`):
            ``batch_size`` is then the *global* batch and this process (``rank`` of ``world_size``) gets
            its part of each, about ``batch_size / world_size`` images (see :class:`EpochSampler`). With
            ``drop_last=True`` the batch must split evenly. ``world_size=1``: the whole batches.
    """
    shuffle = preprocess.augment if shuffle is None else shuffle
    preprocess.check_fits(data)
    geometry = preprocess.geometry(data.shape[:2])
    sampler = EpochSampler(len(data), geometry, preprocess, data.shape[2], batch_size=batch_size,
                           shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size)
    return DataLoader(PlannedBatches(data, preprocess, geometry, channels_last), sampler=sampler, batch_size=None,
                      num_workers=num_workers)
