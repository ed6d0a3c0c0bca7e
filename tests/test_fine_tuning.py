"""fine_tuning: class subsets, folder listings, loading and predicting one image file, fine-tuning, saving."""

import os

import numpy as np
import pytest

from alexnet_lab import data
from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.teaching import fine_tuning
from alexnet_lab.torch import pipeline as torch_pipeline

torch = pytest.importorskip("torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CIFAR_CLASSES = data.CIFAR10_CLASSES


def random_set(n=40, classes=CIFAR_CLASSES, seed=0, size=32) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(classes)
    return ImageSet(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), labels, tuple(classes), "random")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A cats-vs-dogs folder of lossless PNGs (so decoded pixels equal the arrays), 4 + 2 images per class."""
    train, test = random_set(seed=0), random_set(seed=1)
    out = tmp_path_factory.mktemp("pets") / "cats_vs_dogs"
    data.make_image_folder((train, test), out, per_class=4, test_per_class=2, format="png")
    return out


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def test_keep_classes_relabels_in_the_order_given():
    full = random_set()
    pets = fine_tuning.keep_classes(full, ["dog", "cat"])
    assert pets.classes == ("dog", "cat") and len(pets) == 8
    dog = CIFAR_CLASSES.index("dog")
    np.testing.assert_array_equal(pets.images[pets.labels == 0], full.images[full.labels == dog])
    others = fine_tuning.keep_classes(full, [c for c in CIFAR_CLASSES if c not in ("cat", "dog")], name="8 classes")
    assert others.num_classes == 8 and len(others) == 32 and others.name == "8 classes"
    assert set(others.labels) == set(range(8))


def test_keep_classes_refuses_unknown_or_repeated_names():
    with pytest.raises(ValueError, match="Unknown class.*'cow'"):
        fine_tuning.keep_classes(random_set(), ["cat", "cow"])
    with pytest.raises(ValueError, match="once"):
        fine_tuning.keep_classes(random_set(), ["cat", "cat"])


def test_folder_tree_lists_splits_classes_and_counts(folder):
    tree = fine_tuning.folder_tree(folder, max_files=2)
    lines = tree.splitlines()
    assert lines[0] == "cats_vs_dogs/"
    assert lines[1] == "├── test/" and lines[-3] == "└── train/"
    assert "│   ├── cat/  2 files: 00000.png, 00001.png" in lines
    assert "    └── dog/  4 files: 00000.png, 00001.png, ..." in lines
    with pytest.raises(FileNotFoundError, match="no such folder"):
        fine_tuning.folder_tree(folder / "nothing")


def test_load_image_gives_the_folder_loaders_pixels(folder):
    train, _ = data.load_image_folder(folder)
    first_cat = fine_tuning.load_image(folder / "train" / "cat" / "00000.png")
    assert first_cat.shape == (32, 32, 3) and first_cat.dtype == np.uint8
    np.testing.assert_array_equal(first_cat, train.images[0])
    assert fine_tuning.load_image(folder / "train" / "cat" / "00000.png", image_size=20).shape == (20, 20, 3)
    gray = fine_tuning.load_image(folder / "train" / "cat" / "00000.png", channels=1)
    assert gray.shape == (32, 32, 1)
    with pytest.raises(FileNotFoundError, match="no such image file"):
        fine_tuning.load_image(folder / "missing.jpg")


def test_load_image_reports_a_broken_file(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(data.DataFormatError, match="broken.jpg"):
        fine_tuning.load_image(broken)


# --------------------------------------------------------------------------------------------
# Predicting one file
# --------------------------------------------------------------------------------------------

def _torch_model(num_classes=2, seed=0):
    from alexnet_lab import seed_everything
    from alexnet_lab.torch import models as torch_models

    seed_everything(seed, frameworks=("torch",))
    model = torch_models.alexnet("cifar10", num_classes=num_classes).eval()
    torch.nn.init.kaiming_uniform_(model.fc8.weight)  # fc8 starts at zero: give the classes different scores
    return model


def test_predict_image_torch_equals_the_test_pipeline(folder):
    from alexnet_lab.torch import training as torch_training

    train, test = data.load_image_folder(folder)
    pre = preprocessing.Preprocess.for_training(train)
    model = _torch_model()
    expected, labels = torch_training.predict(model, torch_pipeline.make_batches(test, pre.without_augmentation()))
    files = sorted((folder / "test" / "cat").iterdir()) + sorted((folder / "test" / "dog").iterdir())
    for i, path in enumerate(files):
        result = fine_tuning.predict_image(model, path, pre, train.classes)
        np.testing.assert_allclose(result.probabilities, expected[i], atol=1e-6)
        assert result.label == train.classes[int(expected[i].argmax())]
        assert result.probability == pytest.approx(expected[i].max(), abs=1e-6)
        assert [name for name, _ in result.top(2)] == [result.label, *(c for c in train.classes if c != result.label)]
    assert repr(result).startswith("ImagePrediction(00001.png: ") and repr(result).endswith("%)")
    model.train()
    again = fine_tuning.predict_image(model, files[0], pre, train.classes)
    np.testing.assert_allclose(again.probabilities, expected[0], atol=1e-6)  # predicted in evaluation mode
    assert model.training and model.fc6.training  # and the model's own mode restored


def test_predict_image_keras_equals_torch_for_the_same_weights(folder):
    keras_models = pytest.importorskip("alexnet_lab.keras.models")
    from alexnet_lab.teaching import transfer

    train, _ = data.load_image_folder(folder)
    pre = preprocessing.Preprocess.for_training(train)
    model = _torch_model()
    k = keras_models.alexnet("cifar10", num_classes=2)
    transfer.torch_to_keras(model, k)
    path = folder / "test" / "dog" / "00001.png"
    from_torch = fine_tuning.predict_image(model, path, pre, train.classes)
    from_keras = fine_tuning.predict_image(k, path, pre, train.classes)
    np.testing.assert_allclose(from_keras.probabilities, from_torch.probabilities, atol=1e-5)


def test_predict_image_checks_the_class_names(folder):
    train, _ = data.load_image_folder(folder)
    pre = preprocessing.Preprocess.for_training(train)
    with pytest.raises(ValueError, match="2 outputs but 3 class names"):
        fine_tuning.predict_image(_torch_model(), folder / "test" / "cat" / "00000.png", pre, ["a", "b", "c"])


# --------------------------------------------------------------------------------------------
# Fine-tuning: copy, freeze, count
# --------------------------------------------------------------------------------------------

def test_copy_weights_torch_copies_all_but_the_classifier():
    pretrained, new = _torch_model(num_classes=8, seed=1), _torch_model(num_classes=2, seed=2)
    fc8_before = new.fc8.weight.detach().clone()
    copied = fine_tuning.copy_weights(pretrained, new)
    assert copied == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    for name in copied:
        assert torch.equal(getattr(new, name).weight, getattr(pretrained, name).weight), name
    assert torch.equal(new.fc8.weight, fc8_before)


def test_copy_weights_refuses_models_that_do_not_match():
    from alexnet_lab.torch import models as torch_models

    with pytest.raises(ValueError, match="conv1.*same preset"):
        fine_tuning.copy_weights(torch_models.alexnet("cifar10"), torch_models.alexnet("cifar10", in_channels=1))
    # Without skipping fc8, 8 and 2 classes do not fit: nothing is copied.
    pretrained, new = _torch_model(num_classes=8, seed=1), _torch_model(num_classes=2, seed=2)
    before = new.conv1.weight.detach().clone()
    with pytest.raises(ValueError, match="fc8"):
        fine_tuning.copy_weights(pretrained, new, skip=())
    assert torch.equal(new.conv1.weight, before)


def test_freeze_torch_keeps_the_convolutions_through_training():
    from alexnet_lab.core import architecture
    from alexnet_lab.torch import training as torch_training

    model = _torch_model(num_classes=2)
    total = sum(p.numel() for p in model.parameters())
    assert fine_tuning.freeze(model) == list(fine_tuning.CONV_LAYERS)
    conv_params = sum(r.params for r in architecture.layer_table("cifar10", num_classes=2) if r.kind == "Conv")
    assert fine_tuning.parameter_counts(model) == {"trainable": total - conv_params, "frozen": conv_params}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 2, (16,))
    torch_training.fit(model, (x, y), epochs=1, batch_size=8, weight_decay=5e-4, progress=False, verbose=0)
    after = model.state_dict()
    for name in fine_tuning.CONV_LAYERS:
        assert torch.equal(after[f"{name}.weight"], before[f"{name}.weight"]), name
    assert not torch.equal(after["fc6.weight"], before["fc6.weight"])
    with pytest.raises(ValueError, match="no layer.*conv9"):
        fine_tuning.freeze(model, ["conv9"])


def test_copy_and_freeze_keras():
    keras_models = pytest.importorskip("alexnet_lab.keras.models")
    from alexnet_lab.keras import training as keras_training

    pretrained = keras_models.alexnet("cifar10", num_classes=8)
    new = keras_models.alexnet("cifar10", num_classes=2)
    assert fine_tuning.copy_weights(pretrained, new)[-1] == "fc7"
    np.testing.assert_array_equal(new.get_layer("conv3").get_weights()[0], pretrained.get_layer("conv3").get_weights()[0])
    fine_tuning.freeze(new)
    counts = fine_tuning.parameter_counts(new)
    assert counts["trainable"] + counts["frozen"] == new.count_params() and counts["frozen"] > 0
    conv1, fc6 = (new.get_layer(n).get_weights()[0].copy() for n in ("conv1", "fc6"))
    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32")
    keras_training.fit(new, (x, np.arange(16) % 2), epochs=1, batch_size=8, progress=False, verbose=0)
    np.testing.assert_array_equal(new.get_layer("conv1").get_weights()[0], conv1)
    assert not np.array_equal(new.get_layer("fc6").get_weights()[0], fc6)
    with pytest.raises(TypeError, match="within one framework"):
        fine_tuning.copy_weights(pretrained, _torch_model())


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------

def test_save_model_torch_round_trip_and_no_leftovers(tmp_path):
    model = _torch_model()
    path = fine_tuning.save_model(model, tmp_path / "models" / "pets.pt")
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["pets.pt"]
    reloaded = _torch_model(seed=5)
    reloaded.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


def test_save_model_failure_leaves_the_old_file(tmp_path, monkeypatch):
    model = _torch_model()
    path = fine_tuning.save_model(model, tmp_path / "pets.pt")
    old = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fine_tuning.save_model(_torch_model(seed=3), path)
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["pets.pt"]


def test_save_model_keras_round_trip(tmp_path):
    keras_models = pytest.importorskip("alexnet_lab.keras.models")
    import keras

    model = keras_models.alexnet("cifar10", num_classes=2)
    with pytest.raises(ValueError, match=r"\.keras"):
        fine_tuning.save_model(model, tmp_path / "pets.h5")
    path = fine_tuning.save_model(model, tmp_path / "pets.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets.keras"]
    reloaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(reloaded.predict_on_batch(x), model.predict_on_batch(x))


def test_save_and_load_preprocess_round_trip(tmp_path):
    pre = preprocessing.Preprocess.for_training(random_set())
    path = fine_tuning.save_preprocess(tmp_path / "pets.json", pre, ("cat", "dog"))
    loaded, classes = fine_tuning.load_preprocess(path)
    assert loaded == pre and classes == ("cat", "dog")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets.json"]
    (tmp_path / "bad.json").write_text('{"preprocess": {"crop": "zoom"}, "classes": []}')
    with pytest.raises(ValueError, match="bad.json is not a preprocessing file"):
        fine_tuning.load_preprocess(tmp_path / "bad.json")
