"""Tests of alexnet_lab.data.preprocessing: the same batches in PyTorch and TensorFlow, correct augmentation, bounded memory."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from alexnet_lab import data
from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.data.preprocessing import Preprocess
from alexnet_lab.keras import pipeline as keras_pipeline
from alexnet_lab.torch import pipeline as torch_pipeline

torch = pytest.importorskip("torch")
F = torch.nn.functional
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parent.parent
CLASSES = tuple(f"class {i}" for i in range(10))


def random_set(n=200, shape=(32, 32, 3), seed=0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 10, n), CLASSES, "random")


@pytest.fixture(scope="module")
def fashion():
    """The real Fashion-MNIST training set (skips when ALEXNET_LAB_DATA is not set)."""
    where = os.environ.get("ALEXNET_LAB_DATA")
    if not where:
        pytest.skip("ALEXNET_LAB_DATA is not set: no real Fashion-MNIST here")
    train, _ = data.load_fashion_mnist(where, download=False)
    return train


def torch_batches(dataset, pre, epochs=2, batches=3, **kw):
    loader = torch_pipeline.make_batches(dataset, pre, **kw)
    out = []
    for _ in range(epochs):
        out.append([(x.permute(0, 2, 3, 1).numpy(), y.numpy()) for x, y in _first(loader, batches)])
    return out


def tf_batches(dataset, pre, epochs=2, batches=3, **kw):
    ds = keras_pipeline.make_batches(dataset, pre, **kw)
    out = []
    for _ in range(epochs):
        out.append([(x.numpy(), y.numpy()) for x, y in _first(ds, batches)])
    return out


def _first(iterable, n):
    result = []
    for item in iterable:
        result.append(item)
        if len(result) == n:
            break
    return result


# --------------------------------------------------------------------------------------------
# The same batches in both frameworks
# --------------------------------------------------------------------------------------------

CASES = {
    # name: (images, Preprocess arguments)
    "fashion-like 28->227, resize crop": ((28, 28, 1), dict(image_size=227)),
    "cifar-like 32, pad crop": ((32, 32, 3), dict()),
    "downsampling 64x48->40, resize crop": ((64, 48, 3), dict(image_size=40)),
}


@pytest.mark.parametrize("case", CASES)
def test_torch_and_tf_give_the_same_batches_for_the_same_seed(case):
    shape, kwargs = CASES[case]
    dataset = random_set(150, shape, seed=1)
    pre = Preprocess.for_training(dataset, **kwargs)
    t = torch_batches(dataset, pre, batch_size=32, seed=7)
    f = tf_batches(dataset, pre, batch_size=32, seed=7)
    for epoch in range(2):
        for (xt, yt), (xf, yf) in zip(t[epoch], f[epoch], strict=True):
            assert xt.shape == xf.shape == (32, *pre.geometry(shape[:2]).output, shape[2])
            assert xt.dtype == xf.dtype == np.float32
            assert yt.dtype == yf.dtype == np.int64
            np.testing.assert_array_equal(yt, yf)
            np.testing.assert_allclose(xt, xf, rtol=0, atol=1e-5)
    # The epochs differ from one another (order and augmentation) ...
    assert not np.array_equal(t[0][0][1], t[1][0][1])
    assert not np.allclose(t[0][0][0], t[1][0][0], atol=0.1)
    # ... and another seed gives other batches.
    other = torch_batches(dataset, pre, epochs=1, batches=1, batch_size=32, seed=8)
    assert not np.allclose(other[0][0][0], t[0][0][0], atol=0.1)


def test_real_fashion_mnist_identical_in_both_frameworks_at_227(fashion):
    subset = fashion.subset(np.arange(512))
    pre = Preprocess.for_training(fashion, image_size=227)
    t = torch_batches(subset, pre, batch_size=64, seed=0, batches=2)
    f = tf_batches(subset, pre, batch_size=64, seed=0, batches=2)
    for epoch in range(2):
        for (xt, yt), (xf, yf) in zip(t[epoch], f[epoch], strict=True):
            np.testing.assert_array_equal(yt, yf)
            np.testing.assert_allclose(xt, xf, rtol=0, atol=1e-5)
    test_time = pre.without_augmentation()
    (xt, _), = torch_batches(subset, test_time, epochs=1, batches=1, batch_size=64)[0]
    (xf, _), = tf_batches(subset, test_time, epochs=1, batches=1, batch_size=64)[0]
    np.testing.assert_allclose(xt, xf, rtol=0, atol=1e-5)


def test_fashion_mnist_statistics_match_the_published_values(fashion):
    mean, std = preprocessing.channel_stats(fashion)
    assert mean == pytest.approx((0.2860,), abs=1e-4)
    assert std == pytest.approx((0.3530,), abs=1e-4)
    eigvals, eigvecs = preprocessing.pca_lighting_basis(fashion)
    assert eigvals[0] == pytest.approx(std[0] ** 2, rel=0.01)   # 1 channel: the variance, from 1M sampled pixels
    assert eigvecs == ((1.0,),)


# --------------------------------------------------------------------------------------------
# What the batches contain
# --------------------------------------------------------------------------------------------

def numpy_reference(images, plan, pre, pad):
    """The pipeline written out in NumPy, for images that are not resized."""
    x = images.astype(np.float32) / 255.0 + plan.color_shift[:, None, None, :]
    x = (x - np.float32(pre.mean)) / np.float32(pre.std)
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    b = np.arange(len(plan))[:, None, None]
    return x[b, plan.rows[:, :, None], plan.cols[:, None, :]]


def test_pad_crop_flip_and_lighting_do_what_the_plan_says():
    dataset = random_set(64, (32, 32, 3), seed=2)
    pre = Preprocess.for_training(dataset)                        # pad 4, crop 32, flip, lighting 0.1
    assert (pre.crop, pre.crop_padding, pre.flip, pre.lighting_std) == ("pad", 4, True, 0.1)
    geometry = pre.geometry((32, 32))
    plan = next(preprocessing.batch_plans(64, geometry, pre, 3, batch_size=64, shuffle=True, seed=3))
    expected = numpy_reference(dataset.images[plan.indices], plan, pre, pad=4)

    x, y = next(iter(torch_pipeline.make_batches(dataset, pre, batch_size=64, seed=3)))
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), dataset.labels[plan.indices])

    # The plan itself: windows of 32 consecutive rows/columns inside the 40×40 padded image, some mirrored.
    steps = np.diff(plan.cols, axis=1)
    flipped = steps[:, 0] == -1
    assert np.all(np.abs(steps) == 1) and np.all(steps == steps[:, :1])
    assert 0 < flipped.sum() < 64
    assert plan.rows.min() >= 0 and plan.rows.max() <= 39 and np.all(np.diff(plan.rows, axis=1) == 1)
    assert len(set(plan.rows[:, 0])) > 3 and len(set(plan.cols[:, 0])) > 3


def test_evaluation_is_the_centre_and_normalizes_to_zero_mean_unit_std():
    dataset = random_set(100, (32, 32, 3), seed=4)
    pre = Preprocess.for_training(dataset).without_augmentation()
    loader = torch_pipeline.make_batches(dataset, pre, batch_size=100)
    x, y = next(iter(loader))
    np.testing.assert_array_equal(y.numpy(), dataset.labels)       # not shuffled by default
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), correction=0).numpy(), 1, atol=1e-4)
    expected = (dataset.images / np.float32(255) - np.float32(pre.mean)) / np.float32(pre.std)
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), expected, atol=1e-5)


def test_resize_crop_at_test_time_is_the_centre_of_the_larger_canvas():
    dataset = random_set(8, (28, 28, 1), seed=5)
    pre = Preprocess.for_training(dataset, image_size=227)
    assert (pre.crop, pre.crop_padding) == ("resize", 16)          # 259 -> 227, the paper's 256 -> 224 ratio
    geometry = pre.geometry((28, 28))
    assert geometry.resize_to == (259, 259) and geometry.output == (227, 227)
    x, _ = next(iter(torch_pipeline.make_batches(dataset, pre.without_augmentation(), batch_size=8)))
    small = (torch.from_numpy(dataset.images).float() / 255 - pre.mean[0]) / pre.std[0]
    canvas = F.interpolate(small.permute(0, 3, 1, 2), size=(259, 259), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(x.numpy(), canvas[:, :, 16:243, 16:243].numpy(), atol=1e-5)


def test_lighting_noise_follows_the_colour_covariance():
    rng = np.random.default_rng(6)
    # Correlated colours: a grey level plus a little independent noise per channel.
    grey = rng.integers(0, 200, (400, 8, 8, 1))
    images = np.clip(grey + rng.integers(0, 40, (400, 8, 8, 3)), 0, 255).astype(np.uint8)
    dataset = ImageSet(images, rng.integers(0, 10, 400), CLASSES)
    eigvals, eigvecs = preprocessing.pca_lighting_basis(dataset)
    pixels = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.array(eigvecs) @ np.diag(eigvals) @ np.array(eigvecs).T,
                               np.cov(pixels, rowvar=False, bias=True), atol=1e-10)
    assert eigvals[0] > eigvals[1] >= eigvals[2] > 0
    assert np.abs(np.array(eigvecs)[:, 0]) == pytest.approx([3 ** -0.5] * 3, abs=0.05)  # grey is the main direction

    pre = Preprocess(augment=True, lighting_std=0.1, eigvals=eigvals, eigvecs=eigvecs)
    plans = list(preprocessing.batch_plans(20_000, pre.geometry((8, 8)), pre, 3, batch_size=20_000, seed=0))
    shifts = plans[0].color_shift.astype(np.float64)
    # shift = eigvecs @ (alpha * eigvals) with alpha ~ N(0, 0.1): its covariance is eigvecs diag((0.1 λ)²) eigvecsᵀ.
    expected = np.array(eigvecs) @ np.diag((0.1 * np.array(eigvals)) ** 2) @ np.array(eigvecs).T
    np.testing.assert_allclose(np.cov(shifts, rowvar=False), expected, rtol=0.05, atol=1e-9)

    # In a batch, the whole image moves by its shift: the difference to the un-augmented image is constant.
    x_aug, _ = next(iter(torch_pipeline.make_batches(dataset, pre, batch_size=16, shuffle=False)))
    x_plain, _ = next(iter(torch_pipeline.make_batches(dataset, pre.without_augmentation(), batch_size=16)))
    diff = (x_aug - x_plain).permute(0, 2, 3, 1).numpy()
    first = next(preprocessing.batch_plans(400, pre.geometry((8, 8)), pre, 3, batch_size=16, shuffle=False))
    np.testing.assert_allclose(diff, np.broadcast_to(first.color_shift[:, None, None, :], diff.shape), atol=1e-6)


def test_every_image_once_per_epoch_and_the_number_of_batches():
    dataset = random_set(100, (8, 8, 1))
    pre = Preprocess(augment=True, crop_padding=2, flip=True)
    loader = torch_pipeline.make_batches(dataset, pre, batch_size=32, seed=1)
    ds = keras_pipeline.make_batches(dataset, pre, batch_size=32, seed=1)
    assert len(loader) == len(ds) == 4
    sizes = [len(y) for _, y in loader]
    assert sizes == [32, 32, 32, 4]
    plans = list(preprocessing.batch_plans(100, pre.geometry((8, 8)), pre, 1, batch_size=32, seed=1))
    assert sorted(np.concatenate([p.indices for p in plans])) == list(range(100))
    short = torch_pipeline.make_batches(dataset, pre, batch_size=32, drop_last=True)
    short_tf = keras_pipeline.make_batches(dataset, pre, batch_size=32, drop_last=True)
    assert len(short) == len(short_tf) == 3
    assert [len(y) for _, y in short] == [32, 32, 32] == [len(y) for _, y in short_tf]


def test_epochs_can_be_chosen_and_worker_processes_give_the_same_batches():
    dataset = random_set(64, (16, 16, 3))
    pre = Preprocess.for_training(dataset)
    loader = torch_pipeline.make_batches(dataset, pre, batch_size=32, seed=5)
    epoch0 = [x for x, _ in loader]
    epoch1 = [x for x, _ in loader]
    loader.sampler.set_epoch(1)
    assert torch.equal(next(iter(loader))[0], epoch1[0])
    workers = torch_pipeline.make_batches(dataset, pre, batch_size=32, seed=5, num_workers=2)
    for a, b in zip(epoch0, [x for x, _ in workers], strict=True):
        assert torch.equal(a, b)


def test_channels_last_memory_order():
    dataset = random_set(4, (16, 16, 3))
    pre = Preprocess()
    x, _ = next(iter(torch_pipeline.make_batches(dataset, pre, channels_last=True)))
    assert x.shape == (4, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(torch_pipeline.make_batches(dataset, pre)))
    assert x.is_contiguous()
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), dataset.images / np.float32(255))


def test_keras_fit_runs_one_new_epoch_per_pass():
    import keras

    dataset = random_set(96, (16, 16, 1), seed=9)
    pre = Preprocess.for_training(dataset)
    ds = keras_pipeline.make_batches(dataset, pre, batch_size=32, seed=2)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=2, verbose=0, shuffle=False)  # the pipeline shuffles
    assert len(history.history["loss"]) == 2
    # fit used epochs 0 and 1, so the next pass is epoch 2: the same as torch's epoch 2.
    loader = torch_pipeline.make_batches(dataset, pre, batch_size=32, seed=2)
    loader.sampler.set_epoch(2)
    for (xt, yt), (xf, yf) in zip(loader, ds, strict=True):
        np.testing.assert_array_equal(yt.numpy(), yf.numpy())
        np.testing.assert_allclose(xt.permute(0, 2, 3, 1).numpy(), xf.numpy(), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Statistics, checks and messages
# --------------------------------------------------------------------------------------------

def test_channel_stats_are_exact():
    dataset = random_set(50, (5, 7, 3), seed=3)
    mean, std = preprocessing.channel_stats(dataset)
    pixels = dataset.images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-12)


def test_pca_basis_from_a_sample_is_reproducible_and_close_to_the_full_one():
    dataset = random_set(300, (32, 32, 3), seed=8)              # 307,200 pixels
    full = preprocessing.pca_lighting_basis(dataset)
    a = preprocessing.pca_lighting_basis(dataset, max_pixels=50_000, seed=1)
    b = preprocessing.pca_lighting_basis(dataset, max_pixels=50_000, seed=1)
    assert a == b
    np.testing.assert_allclose(a[0], full[0], rtol=0.05)


def test_preprocess_rejects_bad_settings_with_clear_messages():
    with pytest.raises(ValueError, match="crop must be one of"):
        Preprocess(crop="random")
    with pytest.raises(ValueError, match="crop_padding"):
        Preprocess(crop_padding=-1)
    with pytest.raises(ValueError, match="pca_lighting_basis"):
        Preprocess(lighting_std=0.1)
    with pytest.raises(ValueError, match="both mean and std"):
        Preprocess(mean=(0.5,))
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocess(mean=(0.5,), std=(0.0,))
    with pytest.raises(ValueError, match="image_size"):
        Preprocess(image_size=0)
    rgb = Preprocess.for_training(random_set(20, (8, 8, 3)))
    grey = random_set(20, (8, 8, 1))
    with pytest.raises(ValueError, match="3 channel.*has 1"):
        torch_pipeline.make_batches(grey, rgb)
    with pytest.raises(ValueError, match="3 channel.*has 1"):
        keras_pipeline.make_batches(grey, rgb)
    with pytest.raises(ValueError, match="batch_size"):
        list(preprocessing.batch_plans(10, rgb.geometry((8, 8)), rgb, 3, batch_size=0))


def test_both_make_batches_take_the_same_arguments_and_keras_refuses_to_shard():
    import inspect

    torch_args = inspect.signature(torch_pipeline.make_batches).parameters
    keras_args = inspect.signature(keras_pipeline.make_batches).parameters
    assert list(torch_args) == list(keras_args)
    assert all(torch_args[n].default == keras_args[n].default for n in torch_args)
    # ... and so do the functions that turn a plan into a batch.
    assert (list(inspect.signature(torch_pipeline.apply_plan).parameters)
            == list(inspect.signature(keras_pipeline.apply_plan).parameters) == ["images", "plan", "geometry", "preprocess"])
    dataset = random_set(8, (8, 8, 3))
    with pytest.raises(ValueError, match="world_size=2.*tf.distribute shares the batches out"):
        keras_pipeline.make_batches(dataset, Preprocess(), world_size=2)
    with pytest.raises(ValueError, match="rank=1"):
        keras_pipeline.make_batches(dataset, Preprocess(), rank=1, world_size=2)
    # The arguments that mean nothing in TensorFlow change nothing.
    (x, y), = keras_pipeline.make_batches(dataset, Preprocess(), channels_last=False, num_workers=4)
    np.testing.assert_array_equal(x.numpy(), dataset.images / np.float32(255))


# --------------------------------------------------------------------------------------------
# Ten crops
# --------------------------------------------------------------------------------------------

def test_ten_crops_numpy_torch_and_tf():
    images = np.arange(2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1)
    crops = preprocessing.ten_crops(images, 4)
    assert len(crops) == 10 and all(c.shape == (2, 4, 4, 1) for c in crops)
    np.testing.assert_array_equal(crops[0], images[:, :4, :4])       # top-left
    np.testing.assert_array_equal(crops[3], images[:, 2:, 2:])       # bottom-right
    np.testing.assert_array_equal(crops[4], images[:, 1:5, 1:5])     # centre
    np.testing.assert_array_equal(crops[5], images[:, :4, :4][:, :, ::-1])
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
    for a, b in zip(preprocessing.ten_crops(nchw, 4, channels_first=True), crops, strict=True):
        np.testing.assert_array_equal(a.permute(0, 2, 3, 1).numpy(), b)
    for a, b in zip(preprocessing.ten_crops(tf.constant(images), 4), crops, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    with pytest.raises(ValueError, match="do not fit"):
        preprocessing.ten_crops(images, 7)


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def test_plans_of_a_whole_epoch_stay_small():
    """The plans of 60,000 images at 227×227 never hold all crops' indices at once (that would be 109 MB)."""
    pre = Preprocess(image_size=227, augment=True, crop="resize", crop_padding=16, flip=True)
    tracemalloc.start()
    for plan in preprocessing.batch_plans(60_000, pre.geometry((28, 28)), pre, 1, batch_size=256, seed=0):
        assert plan.rows.shape == (len(plan), 227)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10e6, f"plan generation peaked at {peak / 1e6:.1f} MB"


MEMORY_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from alexnet_lab import data
    from alexnet_lab.data import preprocessing
    from alexnet_lab.keras import pipeline as keras_pipeline
    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.core.measure import peak_rss_bytes as peak_rss  # this process's own peak, not its parent's
    framework, n = sys.argv[1], int(sys.argv[2])

    where = os.environ.get("ALEXNET_LAB_DATA")
    if where:
        train, _ = data.load_fashion_mnist(where, download=False)
        source = "Fashion-MNIST"
    else:  # memory does not depend on the pixel values: random images of the same shape
        train, _ = data.random_dataset(60_000, 1, (28, 28, 1))
        source = "random 28x28"
    pre = preprocessing.Preprocess.for_training(train, image_size=227)
    subset = train.subset(np.arange(n))
    make = torch_pipeline.make_batches if framework == "torch" else keras_pipeline.make_batches
    batches = iter(make(subset, pre, batch_size=256, seed=0))
    seen = sum(len(next(batches)[1]) for _ in range(2))             # warm-up: allocators, threads
    before = peak_rss()
    start = time.perf_counter()
    for x, y in batches:
        assert tuple(x.shape[1:]) in ((1, 227, 227), (227, 227, 1)), x.shape
        seen += len(y)
    after = peak_rss()
    print(json.dumps(dict(source=source, images=seen, growth=after - before, peak=after,
                          seconds=time.perf_counter() - start)))
""")


@pytest.mark.skipif(sys.platform == "win32", reason="the resource module is POSIX-only")
@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_peak_memory_of_a_pass_at_227_is_bounded(framework):
    """10,000 Fashion-MNIST images at 227×227 with augmentation: the pass must not keep its batches.

    Keeping them would take 10,000 × 227 × 227 × 4 bytes = 2.1 GB (12.4 GB for all 60,000, 37 GB
    for three channels); a pass needs only a few batches of 53 MB at any time.
    """
    n = 10_000
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, framework, str(n)], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["images"] == n
    all_batches = n * 227 * 227 * 4
    assert result["growth"] < 0.25 * all_batches, result               # < 0.5 GB
    # The peak includes start-up (the framework's libraries and the whole uint8 data set, loaded before the
    # pass): measured 0.56 GB (PyTorch) and 1.17 GB (TensorFlow). Far below the 2.1 GB that keeping this
    # pass's batches would take (and the 37 GB of the resized data set).
    assert result["peak"] < 2e9, result
    print(f"{framework}: {result}")


def test_replace_keeps_preprocess_valid():
    pre = Preprocess.for_training(random_set(20, (8, 8, 3)))
    with pytest.raises(ValueError, match="crop_padding"):
        dataclasses.replace(pre, crop_padding=-2)
