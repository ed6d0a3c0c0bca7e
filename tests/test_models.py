"""The framework-free table, the Keras model and the PyTorch model describe the same network."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from alexnet_lab import data
from alexnet_lab.core import architecture as arch

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from alexnet_lab.keras import models as keras_models  # noqa: E402
from alexnet_lab.teaching import transfer  # noqa: E402
from alexnet_lab.torch import models as torch_models  # noqa: E402

# Every preset with its defaults, plus variants that exercise BatchNorm, LRN, dropout and other sizes.
CONFIGS = [(p, {}) for p in arch.preset_names()] + [
    ("classic", {"norm": "batch"}),
    ("classic", {"norm": "lrn", "dropout": 0.0}),
    ("cifar10", {"norm": "batch", "num_classes": 100}),
    ("torchvision", {"image_size": 256}),  # adaptive pooling from 7×7 to 6×6
    ("classic", {"in_channels": 1, "image_size": 67, "num_classes": 2}),
    ("compact", {"norm": "batch", "width": 0.5, "num_classes": 2}),
    ("paper", {"width": 0.5}),  # grouped convolutions: 128, 192, 128 filters stay even
]
IDS = [f"{p}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for p, kw in CONFIGS]


def _torch_layer_outputs(model) -> dict[str, tuple[int, ...]]:
    """Run one image through the model and record each named child's output shape, written (H, W, C)."""
    shapes = {}

    def hook(name):
        def record(_module, _inputs, output):
            s = tuple(output.shape[1:])
            shapes[name] = (s[1], s[2], s[0]) if len(s) == 3 else s
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_children()]
    c, h, w = model.input_shape
    with torch.no_grad():
        model.eval()(torch.zeros(1, c, h, w))
    for handle in handles:
        handle.remove()
    return shapes


def _torch_params(module) -> int:
    """Weights of a layer, BatchNorm's running statistics included (as Keras and the table count them)."""
    return sum(t.numel() for t in module.state_dict().values() if t.is_floating_point())


@pytest.mark.filterwarnings("ignore::alexnet_lab.core.architecture.ImageSizeWarning")
@pytest.mark.parametrize(("preset", "kwargs"), CONFIGS, ids=IDS)
def test_table_keras_and_torch_agree_layer_by_layer(preset, kwargs):
    rows = arch.layer_table(preset, **kwargs)
    kmodel = keras_models.alexnet(preset, **kwargs)
    tmodel = torch_models.alexnet(preset, **kwargs)

    # Same layer names in the same order (Keras adds explicit zero-padding layers where "same" can't pad).
    keras_names = [layer.name for layer in kmodel.layers if not layer.name.endswith("_pad")]
    torch_names = [name for name, _ in tmodel.named_children()]
    assert keras_names == torch_names == [r.name for r in rows]

    torch_shapes = _torch_layer_outputs(tmodel)
    torch_children = dict(tmodel.named_children())
    for row in rows:
        klayer = kmodel.get_layer(row.name)
        assert tuple(klayer.output.shape[1:]) == row.output_shape, f"Keras {row.name}"
        assert torch_shapes[row.name] == row.output_shape, f"PyTorch {row.name}"
        assert klayer.count_params() == row.params, f"Keras {row.name}"
        assert _torch_params(torch_children[row.name]) == row.params, f"PyTorch {row.name}"

    total = arch.totals(rows)["params"]
    assert kmodel.count_params() == total
    assert _torch_params(tmodel) == total


@pytest.mark.parametrize("preset", arch.preset_names())
def test_documented_parameter_totals(preset):
    expected = arch.PRESETS[preset].reference_params
    assert arch.totals(arch.layer_table(preset))["params"] == expected


def test_the_numbers_everyone_quotes():
    assert arch.totals(arch.layer_table("classic"))["params"] == 62_378_344
    paper = arch.totals(arch.layer_table("paper"))
    assert paper["params"] == 60_965_224
    assert paper["neurons"] == 659_272  # the paper's "650,000 neurons"
    assert arch.totals(arch.layer_table("torchvision"))["params"] == 61_100_840
    assert arch.totals(arch.layer_table("lenet5"))["params"] == 61_706
    rows = {r.name: r for r in arch.layer_table("classic")}
    assert rows["conv1"].output_shape == (55, 55, 96)
    assert rows["pool5"].output_shape == (6, 6, 256)
    assert rows["conv1"].macs == 55 * 55 * 96 * 11 * 11 * 3


def test_the_compact_preset_is_the_laptop_network_for_cifar10_and_fashion_mnist():
    """96-56-84-84-56 convolutions and a 496-unit head: 653,234 parameters on 32×32×3 images, and the same
    2×2×56 map before flatten on 1-channel 28×28 images."""
    rows = {r.name: r for r in arch.layer_table("compact")}
    assert arch.totals(list(rows.values()))["params"] == 653_234
    assert [rows[f"conv{i}"].output_shape[2] for i in range(1, 6)] == [96, 56, 84, 84, 56]
    assert rows["conv1"].output_shape == (28, 28, 96) and rows["pool5"].output_shape == (2, 2, 56)
    assert rows["fc6"].output_shape == (496,) and not any(r.kind == "Dropout" for r in rows.values())
    grey = {r.name: r for r in arch.layer_table("compact", in_channels=1, image_size=28)}
    assert grey["pool5"].output_shape == (2, 2, 56)
    assert arch.totals(list(grey.values()))["params"] == 653_234 - 5 * 5 * 2 * 96
    batch = {r.name: r for r in arch.layer_table("compact", norm="batch")}
    assert "bn1" in batch and batch["conv1"].params == 5 * 5 * 3 * 96  # BatchNorm's shift replaces the bias


def test_width_scales_every_layer_channels_and_the_hidden_units():
    half = {r.name: r for r in arch.layer_table("compact", width=0.5, norm="batch")}
    assert [half[f"conv{i}"].output_shape[2] for i in range(1, 6)] == [48, 28, 42, 42, 28]
    assert half["fc6"].output_shape == half["fc7"].output_shape == (248,) and half["fc8"].output_shape == (10,)
    full = arch.totals(arch.layer_table("compact", norm="batch"))
    halved = arch.totals(list(half.values()))
    assert 0.2 < halved["params"] / full["params"] < 0.3  # most weights connect two scaled layers: about 1/4
    assert 0.25 < halved["macs"] / full["macs"] < 0.4
    assert arch.layer_table("compact", width=1.0) == arch.layer_table("compact")
    for bad in (0, -0.5, "half", True, 5):
        with pytest.raises(ValueError, match=f"Received: width={bad!r}"):
            arch.describe_alexnet("compact", width=bad)
    with pytest.raises(ValueError, match="must stay even"):
        arch.describe_alexnet("paper", width=0.3)


def test_lenet5_in_both_frameworks():
    rows = arch.layer_table("lenet5")
    kmodel, tmodel = keras_models.lenet5(), torch_models.lenet5()
    assert kmodel.count_params() == _torch_params(tmodel) == 61_706
    shapes = _torch_layer_outputs(tmodel)
    for row in rows:
        assert tuple(kmodel.get_layer(row.name).output.shape[1:]) == row.output_shape == shapes[row.name]


def _randomize_batchnorm(tmodel, rng):
    """Random BatchNorm statistics and a random fc8 (which starts at zero), so that every layer is compared."""
    with torch.no_grad():
        tmodel.fc8.weight.copy_(torch.from_numpy(rng.normal(0, 0.05, tuple(tmodel.fc8.weight.shape)).astype(np.float32)))
        tmodel.fc8.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, tuple(tmodel.fc8.bias.shape)).astype(np.float32)))
    for module in tmodel.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.5, n).astype(np.float32)))
            module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n).astype(np.float32)))
            module.weight.data.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)))
            module.bias.data.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))


def _logits(kmodel, tmodel, x_nhwc):
    k = np.asarray(kmodel(x_nhwc, training=False))
    with torch.no_grad():
        t = tmodel.eval()(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())).numpy()
    return k, t


@pytest.mark.filterwarnings("ignore::alexnet_lab.core.architecture.ImageSizeWarning")
@pytest.mark.parametrize(("preset", "kwargs"), CONFIGS, ids=IDS)
def test_weight_transfer_gives_equal_logits(preset, kwargs):
    rng = np.random.default_rng(0)
    tmodel = torch_models.alexnet(preset, **kwargs)
    _randomize_batchnorm(tmodel, rng)
    kmodel = keras_models.alexnet(preset, **kwargs)
    h, w, c = kmodel.inputs[0].shape[1:]
    x = rng.normal(0, 1, (2, h, w, c)).astype(np.float32)

    transfer.torch_to_keras(tmodel, kmodel)
    k, t = _logits(kmodel, tmodel, x)
    assert np.abs(k).max() > 1e-3  # the logits are not trivially zero
    np.testing.assert_allclose(k, t, atol=1e-4, rtol=1e-4)

    # And back: a fresh PyTorch model takes the Keras weights and agrees again.
    tmodel2 = torch_models.alexnet(preset, **kwargs)
    transfer.keras_to_torch(kmodel, tmodel2)
    _, t2 = _logits(kmodel, tmodel2, x)
    np.testing.assert_allclose(t2, t, atol=1e-4, rtol=1e-4)


def _standardized_images(in_channels: int, size: int, n: int = 8) -> np.ndarray:
    """``n`` real images (CIFAR-10, or Fashion-MNIST for one channel), resized to ``size``, standardized, NHWC."""
    if in_channels == 1:
        images = data.load_fashion_mnist(per_class=1, test_per_class=1, seed=0)[0].images[:n]
    else:
        images = data.load_cifar10(per_class=1, test_per_class=1, seed=0)[0].images[:n]
    x = torch.from_numpy(np.asarray(images, np.float32).reshape(n, *images.shape[1:3], -1) / 255.0)
    x = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=(size, size), mode="bilinear")
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    return x.permute(0, 2, 3, 1).numpy()


@pytest.mark.filterwarnings("ignore::alexnet_lab.core.architecture.ImageSizeWarning")
@pytest.mark.parametrize("norm", arch.NORMS)
@pytest.mark.parametrize("preset", arch.preset_names())
def test_a_fresh_network_starts_at_the_loss_of_guessing(preset, norm):
    """First loss within ln(C) ± 0.5 on standardized real images, in both frameworks (fc8 starts at zero)."""
    tmodel = torch_models.alexnet(preset, norm=norm)
    kmodel = keras_models.alexnet(preset, norm=norm)
    h, w, c = kmodel.inputs[0].shape[1:]
    x = _standardized_images(c, h)
    y = np.arange(len(x)) % 10
    num_classes = tmodel.fc8.out_features
    k_loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, kmodel(x, training=True)))
    t_logits = tmodel.train()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y)).item()
    for framework, loss in (("keras", k_loss), ("torch", t_loss)):
        assert abs(loss - np.log(num_classes)) < 0.5, (framework, preset, norm, loss, np.log(num_classes))


def test_transfer_refuses_models_of_different_configurations():
    with pytest.raises(ValueError, match="conv2.*same preset"):
        transfer.torch_to_keras(torch_models.alexnet("paper"), keras_models.alexnet("classic"))
    with pytest.raises(ValueError, match=r"only in PyTorch: \['bn1'.*same function and arguments"):
        transfer.torch_to_keras(torch_models.alexnet("cifar10", norm="batch"), keras_models.alexnet("cifar10"))
    # Nothing was copied before the mismatch was found.
    kmodel, tmodel = keras_models.alexnet("cifar10", num_classes=5), torch_models.alexnet("cifar10")
    before = kmodel.get_layer("conv1").get_weights()[0].copy()
    with pytest.raises(ValueError, match="fc8"):
        transfer.torch_to_keras(tmodel, kmodel)
    np.testing.assert_array_equal(before, kmodel.get_layer("conv1").get_weights()[0])


def _lrn_reference(a, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """The paper's formula, written out with loops over channels (NHWC)."""
    channels = a.shape[-1]
    out = np.empty_like(a, dtype=np.float64)
    for i in range(channels):
        lo, hi = max(0, i - size // 2), min(channels - 1, i + size // 2)
        out[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo:hi + 1].astype(np.float64) ** 2, axis=-1)) ** beta
    return out


def test_lrn_matches_paper_tensorflow_and_pytorch():
    rng = np.random.default_rng(1)
    # Large activations make the normalization matter (with α=1e-4 small values pass almost unchanged).
    x = rng.normal(0, 30, (2, 7, 7, 16)).astype(np.float32)
    ours = np.asarray(keras_models.LocalResponseNormalization()(x))
    reference = _lrn_reference(x)
    assert np.abs(reference - x).max() > 1.0  # the test data does exercise the denominator
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    tf_lrn = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75).numpy()
    np.testing.assert_allclose(ours, tf_lrn, rtol=1e-5, atol=1e-5)
    # PyTorch divides alpha by the window size: the paper's alpha=1e-4 is alpha=5e-4 there.
    torch_lrn = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(
        torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours, torch_lrn, rtol=1e-5, atol=1e-5)
    naive = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(
        torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert np.abs(naive - reference).max() > 1e-2  # copying alpha unchanged would be wrong


def test_unknown_preset_lists_known_ones():
    for build in (keras_models.alexnet, torch_models.alexnet, arch.layer_table):
        with pytest.raises(ValueError, match="Known presets: classic, paper, torchvision, cifar10, fashion_mnist"):
            build("alexnet2012")


def test_too_small_image_says_the_minimum():
    minimum = arch.min_image_size(3, arch.describe_alexnet("classic")[1])
    assert minimum == 67
    with pytest.raises(ValueError, match="smallest image this network accepts is 67×67"):
        torch_models.alexnet("classic", image_size=32)
    with pytest.raises(ValueError, match="smallest image this network accepts is 67×67"):
        keras_models.alexnet("classic", image_size=32)
    torch_models.alexnet("classic", image_size=67)  # the minimum itself works


def test_224_instead_of_227_warns_and_explains():
    with pytest.warns(arch.ImageSizeWarning, match=r"conv1 .* gives 54×54.*227×227.*padding=2"):
        rows = arch.layer_table("classic", image_size=224)
    assert rows[0].output_shape == (54, 54, 96)
    with pytest.warns(arch.ImageSizeWarning):
        model = torch_models.alexnet("classic", image_size=224)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arch.layer_table("classic")  # 227: no warning
        arch.layer_table("torchvision")  # 224 with padding 2: no warning


def test_models_say_what_input_they_expect():
    tmodel = torch_models.alexnet("cifar10")
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 3, 32, 32\).*channels-last.*permute"):
        tmodel(torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 3, 32, 32\).*image_size=28"):
        tmodel(torch.zeros(2, 3, 28, 28))
    kmodel = keras_models.alexnet("cifar10")
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 32, 32, 3\).*image_size=28"):
        kmodel(np.zeros((2, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match=r"channels-first.*transpose"):
        kmodel(np.zeros((2, 3, 32, 32), np.float32))


def test_slicing_a_torch_model_gives_the_first_layers_for_feature_maps():
    tmodel = torch_models.alexnet("classic", num_classes=10).eval()
    names = list(dict(tmodel.named_children()))
    first = tmodel[:3]  # conv1, its ReLU, pool1
    assert list(dict(first.named_children())) == names[:3]
    with torch.no_grad():
        assert first(torch.zeros(1, 3, 227, 227)).shape == (1, 96, 27, 27)
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 3, 227, 227\)"):
        first(torch.zeros(1, 227, 227, 3))  # still checks the images it is given
    rest = tmodel[3:]
    assert type(rest) is torch.nn.Sequential and list(dict(rest.named_children())) == names[3:]
    with torch.no_grad():
        x = torch.randn(2, 3, 227, 227)
        assert torch.allclose(rest(first(x)), tmodel(x), atol=1e-5)
    assert isinstance(tmodel[0], torch.nn.Conv2d)


def test_keras_model_saves_and_loads_as_keras_file(tmp_path):
    model = keras_models.alexnet("paper", num_classes=10, image_size=67)
    x = np.random.default_rng(2).random((1, 67, 67, 3)).astype(np.float32)
    path = tmp_path / "paper.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_models.CheckedSequential)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)


def test_grouped_convolutions_train_in_both_frameworks():
    """The paper's two-GPU split (groups=2) must have gradients on the CPU too.

    Two steps each: fc8 starts at zero, so the first step's gradient stops there and only fc8 moves.
    """
    kmodel = keras_models.alexnet("paper", num_classes=4, image_size=67)
    kmodel.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(3).random((4, 67, 67, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    before = kmodel.get_layer("conv2").get_weights()[0].copy()
    kmodel.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert not np.allclose(before, kmodel.get_layer("conv2").get_weights()[0])

    tmodel = torch_models.alexnet("paper", num_classes=4, image_size=67)
    sgd = torch.optim.SGD(tmodel.parameters(), lr=0.01)
    for _ in range(2):
        sgd.zero_grad()
        loss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2))),
                                                 torch.from_numpy(y))
        loss.backward()
        sgd.step()
    assert tmodel.conv2.weight.grad.abs().sum() > 0
