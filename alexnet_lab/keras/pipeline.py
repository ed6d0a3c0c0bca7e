"""The TensorFlow side of :mod:`alexnet_lab.data.preprocessing`: apply a framework-free batch plan with tf ops.

Use it through :func:`alexnet_lab.keras.pipeline.make_batches`. The dataset is built in three steps:

1. ``Dataset.from_generator``: a Python generator hands out, per batch, the uint8 images and labels it
   picked and the plan's index arrays (cheap: no float data yet). Each new pass is a new epoch.
2. ``.map(...)``: TensorFlow's threads turn them into float batches with :func:`apply_plan`.
3. ``.prefetch(2)``: the next batches are prepared while the model trains on this one.

Why fixed numbers instead of ``tf.data.AUTOTUNE``: with TensorFlow 2.21's autotuning switched on,
ending a pass over the dataset (every epoch of ``model.fit``) waits for the autotuner's next
wake-up, up to about 10 seconds. Measured on 2,560 Fashion-MNIST-sized images resized to 227×227:
passes took 2.6, 5.1 or 10.3 s with autotuning and 1.8 s without. So autotuning is off, and two
batches are prepared in parallel and two kept ready, which keeps this 2-core machine busy.
"""

from __future__ import annotations

import tensorflow as tf

from alexnet_lab.data import ImageSet
from alexnet_lab.data.preprocessing import BatchPlan, Geometry, Preprocess, batch_plans, num_batches

__all__ = ["make_batches", "apply_plan"]

PARALLEL_BATCHES = 2   # batches prepared at the same time
PREFETCH_BATCHES = 2   # batches kept ready for the model


def apply_plan(images, plan: BatchPlan, geometry: Geometry, preprocess: Preprocess) -> tf.Tensor:
    """Turn uint8 images ``(B, H, W, C)`` into the float32 batch ``(B, H', W', C)`` that ``plan`` describes.

    :func:`alexnet_lab.torch.pipeline.apply_plan` does the same steps with PyTorch ops. Inside ``tf.data``
    the plan's arrays are tensors.
    """
    # Per-pixel arithmetic on the small stored images.
    x = tf.cast(images, tf.float32) / 255.0
    x = x + plan.color_shift[:, None, None, :]
    if preprocess.mean is not None:
        x = (x - tf.constant(preprocess.mean, tf.float32)) / tf.constant(preprocess.std, tf.float32)
    # Resize and pad.
    if geometry.resize_to is not None:
        shrinking = geometry.resize_to[0] < geometry.source[0] or geometry.resize_to[1] < geometry.source[1]
        x = tf.image.resize(x, geometry.resize_to, method="bilinear", antialias=shrinking)
    if geometry.pad:
        p = geometry.pad
        x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
    # Crop and flip: pick the plan's rows, then its columns, for every image.
    x = tf.gather(x, plan.rows, axis=1, batch_dims=1)
    x = tf.gather(x, plan.cols, axis=2, batch_dims=1)
    return x


def make_batches(data: ImageSet, preprocess: Preprocess, *, batch_size: int = 64, shuffle: bool | None = None,
                 seed: int = 0, drop_last: bool = False, channels_last: bool = False, num_workers: int = 0,
                 rank: int = 0, world_size: int = 1) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(x, y)``: float32 images ``(B, H, W, C)`` and int64 labels ``(B,)``, prefetched.

    Every pass over the dataset (each epoch of ``model.fit``) is a new epoch (0, 1, 2, ...) with its
    own order and augmentation. ``len(dataset)`` (its cardinality) is the number of batches. The
    arguments are those of :func:`alexnet_lab.torch.pipeline.make_batches`, and the same seed gives
    the same batches. ``dataset.set_epoch(k)`` makes the next pass epoch ``k`` (``keras.training.fit``
    does it on resume). Three of them mean nothing in TensorFlow:

    * ``channels_last`` is ignored: Keras batches are always channels-last ``(B, H, W, C)``.
    * ``num_workers`` is ignored: ``tf.data`` prepares ``PARALLEL_BATCHES`` batches at a time in its
      own threads (see the module docstring).
    * ``rank`` and ``world_size`` must stay 0 and 1: Keras shards through ``tf.distribute``, which
      splits each batch of the *global* size over the replicas and workers itself (see
      :mod:`alexnet_lab.keras.distributed`); anything else raises a ``ValueError``.
    """
    if world_size != 1 or rank != 0:
        raise ValueError(f"keras.pipeline.make_batches takes no rank/world_size (got rank={rank}, "
                         f"world_size={world_size}): in Keras, tf.distribute shares the batches out. Make batches of "
                         "the global batch size with the defaults rank=0, world_size=1, and train inside "
                         "strategy.scope() (alexnet_lab.keras.distributed.tf_strategy).")
    shuffle = preprocess.augment if shuffle is None else shuffle
    preprocess.check_fits(data)
    geometry = preprocess.geometry(data.shape[:2])
    h, w, c = data.shape
    out_h, out_w = geometry.output
    epochs_started = [0]

    def batches():
        epoch = epochs_started[0]
        epochs_started[0] += 1
        for plan in batch_plans(len(data), geometry, preprocess, c, batch_size=batch_size, shuffle=shuffle,
                                seed=seed, epoch=epoch, drop_last=drop_last):
            yield (data.images[plan.indices], data.labels[plan.indices].astype("int64"),
                   plan.indices.astype("int64"), plan.rows, plan.cols, plan.color_shift)

    def to_batch(images, labels, *plan):
        return apply_plan(images, BatchPlan(*plan), geometry, preprocess), labels

    signature = (
        tf.TensorSpec((None, h, w, c), tf.uint8),
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None, out_h), tf.int32),
        tf.TensorSpec((None, out_w), tf.int32),
        tf.TensorSpec((None, c), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches(len(data), batch_size, drop_last)))
    dataset = dataset.map(to_batch, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    dataset = dataset.prefetch(PREFETCH_BATCHES)
    options = tf.data.Options()
    options.autotune.enabled = False   # see the module docstring
    dataset = dataset.with_options(options)
    # What torch's samplers call set_epoch: keras_training.fit(..., resume=True) says which epoch comes next,
    # so that a resumed run sees the batches that a run that never stopped would have seen.
    dataset.set_epoch = lambda epoch: epochs_started.__setitem__(0, int(epoch))
    return dataset
