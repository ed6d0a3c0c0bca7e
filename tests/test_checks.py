"""alexnet_lab.grading.checks: the first difference is found, named, and comes with the fix.

Broken models are built from the framework-free description with one planted mistake, in
Keras and in PyTorch, mostly on the small ``cifar10`` preset (32×32 inputs) to keep this fast.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.core.history import History
from alexnet_lab.grading import checks

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from alexnet_lab.keras import models as keras_models  # noqa: E402
from alexnet_lab.torch import models as torch_models  # noqa: E402

FRAMEWORKS = ["keras", "torch"]
# Classic AlexNet for 224×224 images with conv1 padded by 2: conv1 gives the paper's 55×55×96.
CLASSIC_224 = dataclasses.replace(arch.get_preset("classic"), name="classic_224", image_size=224,
                                  paddings=(2, 2, 1, 1, 1))


def build(framework: str, preset="cifar10", change=None, **kwargs):
    """A course model of ``preset``, with ``change(specs) -> specs`` applied to its layer list first.

    Its output layer gets He-initialized weights (the course's start at zero, which gives every image the same
    scores): the checks look at how the outputs change with the inputs and the mode.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", arch.ImageSizeWarning)
        input_shape, specs = arch.describe_alexnet(preset, **kwargs)
    if change is not None:
        specs = change(list(specs))
    specs = [arch.with_overrides(s, init="he_uniform") if isinstance(s, arch.Dense) else s for s in specs]
    module = keras_models if framework == "keras" else torch_models
    return module.build(input_shape, specs, name="student")


def replace_layer(name: str, **fields):
    return lambda specs: [arch.with_overrides(s, **fields) if s.name == name else s for s in specs]


def drop_layer(name: str):
    return lambda specs: [s for s in specs if s.name != name]


# ---------------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_course_models_match_their_reference(framework, norm):
    report = checks.check_model(build(framework, norm=norm), "cifar10", norm=norm)
    assert report.passed, str(report)
    assert report.first_failure is None
    assert "everything matches" in str(report)
    rows = arch.layer_table("cifar10", norm=norm)
    assert f"{arch.totals(rows)['params']:,}" in str(report)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_224_input_without_padding_names_conv1_and_both_fixes(framework):
    model = build(framework, CLASSIC_224, change=replace_layer("conv1", padding=0), num_classes=10)
    report = checks.check_model(model, CLASSIC_224, num_classes=10)
    assert not report.passed
    first = report.first_failure
    assert first.layer == "conv1" and first.aspect == "shape"
    assert "conv1 gives 54×54×96 where the reference gives 55×55×96" in first.message
    assert "(224 + 2·0 − 11) / 4 + 1 = 54" in first.message
    assert "For a 224×224 input use padding=2" in first.message and "or feed 227×227 images" in first.message
    if framework == "keras":
        assert "ZeroPadding2D(2)" in first.message
    # Later layers differ only because conv1 does: they are not reported as mistakes of their own.
    assert [f.layer for f in report.errors] == ["conv1", "model"]
    assert "↓" in str(report)


def test_224_without_padding_in_a_torch_model_that_crashes_still_points_at_conv1():
    model = nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 10))
    report = checks.check_model(model, CLASSIC_224, num_classes=10)
    assert report.first_failure.layer == "conv1"
    crash = [f for f in report.errors if f.aspect == "forward"]
    assert len(crash) == 1
    assert "'14' (Linear)" in crash[0].message and "built for 9,216 input features but receives 6,400" in crash[0].message
    assert "not reached" in str(report)  # the layers after the crash


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_missing_relu(framework):
    report = checks.check_model(build(framework, change=drop_layer("relu3")), "cifar10")
    assert report.first_failure.layer == "relu3"
    assert "missing ReLU after conv3" in report.first_failure.message
    assert ("nn.ReLU()" if framework == "torch" else "layers.ReLU()") in report.first_failure.message
    assert len(report.errors) == 1  # the parameters still add up: nothing else is wrong


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wrong_channel_count(framework):
    report = checks.check_model(build(framework, change=replace_layer("conv2", filters=128)), "cifar10")
    first = report.first_failure
    assert first.layer == "conv2" and first.aspect == "channels"
    assert "conv2 has 128 filters (output channels) where the reference has 192" in first.message
    assert ("nn.Conv2d(64, 192, 5" if framework == "torch" else "layers.Conv2D(192, 5") in first.message


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("change", "layer", "words"), [
    (replace_layer("relu1", function="tanh"), "relu1", "relu1 applies tanh where the reference applies ReLU"),
    (replace_layer("dropout6", rate=0.2), "dropout6", "dropout6 drops 20% of the units (rate 0.2) where the reference drops 50%"),
    (replace_layer("pool1", size=2), "pool1", "pool1 pools 2×2 windows with stride 2×2 where the reference pools 3×3"),
    (replace_layer("fc7", units=512), "fc7", "fc7 has 512 units where the reference has 1,024"),
])
def test_activation_pooling_dropout_and_units(framework, change, layer, words):
    report = checks.check_model(build(framework, change=change), "cifar10")
    assert report.first_failure.layer == layer
    assert words in report.first_failure.message


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_average_pooling_instead_of_max_pooling(framework):
    swap = lambda specs: [arch.AvgPool(s.name, s.size, s.stride) if s.name == "pool2" else s for s in specs]  # noqa: E731
    report = checks.check_model(build(framework, change=swap), "cifar10")
    assert report.first_failure.layer == "pool2"
    assert "pool2 is average pooling where the reference uses max-pooling" in report.first_failure.message


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_softmax_after_fc8_is_reported_as_not_logits(framework):
    if framework == "keras":
        model = build("keras", change=lambda specs: specs + [arch.Activation("softmax", "softmax")])
    else:
        model = nn.Sequential(build("torch"), nn.Softmax(dim=1))
    report = checks.check_model(model, "cifar10")
    assert report.first_failure.layer == "fc8" and report.first_failure.aspect == "logits"
    assert "returns probabilities" in report.first_failure.message and "double softmax" in report.first_failure.message


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_batchnorm_where_the_reference_has_none(framework):
    report = checks.check_model(build(framework, norm="batch"), "cifar10")
    assert report.first_failure.layer == "conv1"
    assert "extra BatchNorm" in report.first_failure.message and "norm='batch'" in report.first_failure.message


class FunctionalAlexNet(nn.Module):
    """The cifar10 preset written the way many PyTorch tutorials do: functions in forward."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 64, 5, padding=2), nn.Conv2d(64, 192, 5, padding=2)
        self.conv3, self.conv4 = nn.Conv2d(192, 384, 3, padding=1), nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)
        self.fc6, self.fc7, self.fc8 = nn.Linear(2304, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 10)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 3, 2)
        x = F.relu(self.conv4(F.relu(self.conv3(x))))
        x = F.max_pool2d(F.relu(self.conv5(x)), 3, 2)
        x = x.view(x.size(0), -1)
        x = self.dropout(F.relu(self.fc6(x)))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)


def test_functional_torch_code_is_recognised_from_what_it_computes():
    model = FunctionalAlexNet()
    model.train()
    report = checks.check_model(model, "cifar10")
    assert report.passed, str(report)
    assert model.training and model.conv1.training  # the check put the model back in training mode


def test_a_keras_model_without_input_is_checked_at_the_reference_size():
    model = keras.Sequential([keras.layers.Conv2D(6, 5, padding="same", activation="tanh"),
                              keras.layers.AveragePooling2D(2), keras.layers.Conv2D(16, 5, activation="tanh"),
                              keras.layers.AveragePooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(120, activation="tanh"), keras.layers.Dense(84, activation="tanh"),
                              keras.layers.Dense(10)])
    report = checks.check_model(model, "lenet5")
    assert report.passed, str(report)


def test_a_keras_model_declaring_another_input_size_is_told_so():
    report = checks.check_model(keras_models.alexnet("cifar10", image_size=40), "cifar10")
    assert report.first_failure.layer == "input"
    assert "your model takes 40×40×3 images where the reference takes 32×32×3" in report.first_failure.message


def test_assert_model_matches_raises_with_the_first_difference_first():
    with pytest.raises(AssertionError) as info:
        checks.assert_model_matches(build("torch", change=drop_layer("relu2")), "cifar10")
    assert str(info.value).splitlines()[0].endswith("missing ReLU after conv2: the reference has relu2 here; add nn.ReLU().")
    checks.assert_model_matches(build("torch"), "cifar10")  # a correct model passes silently


def test_not_a_model():
    with pytest.raises(TypeError, match="Keras model or a PyTorch nn.Module"):
        checks.check_model(np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Loss, evaluation mode, inputs, initialization
# ---------------------------------------------------------------------------------------------
def test_double_softmax_in_torch_and_the_loss_floor():
    model = build("torch")
    assert checks.check_loss_setup(model, nn.CrossEntropyLoss())[0].severity == "ok"
    probabilities = nn.Sequential(model, nn.Softmax(dim=1))
    probabilities.input_shape = model.input_shape
    (finding,) = checks.check_loss_setup(probabilities, nn.CrossEntropyLoss())
    assert finding.severity == "error" and finding.message.startswith("double softmax")
    assert "at least 1.46 with 10 classes" in finding.message
    # The floor is what cross-entropy gives for a perfect one-hot "logit" vector.
    floor = nn.CrossEntropyLoss()(torch.eye(10)[:1], torch.tensor([0])).item()
    assert math.isclose(checks.double_softmax_loss_floor(10), floor, rel_tol=1e-6)
    with pytest.raises(AssertionError, match="double softmax"):
        checks.assert_loss_setup(probabilities, nn.CrossEntropyLoss())


def test_keras_losses_with_and_without_from_logits():
    logits = build("keras")
    probs = build("keras", change=lambda specs: specs + [arch.Activation("softmax", "softmax")])
    with_logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    without = keras.losses.SparseCategoricalCrossentropy()
    assert checks.check_loss_setup(logits, with_logits)[0].severity == "ok"
    assert checks.check_loss_setup(probs, with_logits)[0].aspect == "double softmax"
    (finding,) = checks.check_loss_setup(logits, without)
    assert finding.severity == "error" and "use from_logits=True" in finding.message
    assert checks.check_loss_setup(probs, "sparse_categorical_crossentropy")[0].severity == "note"


def test_torch_nll_loss_needs_log_probabilities():
    model = build("torch")
    (finding,) = checks.check_loss_setup(model, nn.NLLLoss())
    assert finding.severity == "error" and "nn.CrossEntropyLoss" in finding.message
    log_probs = nn.Sequential(model, nn.LogSoftmax(dim=1))
    log_probs.input_shape = model.input_shape
    assert checks.check_loss_setup(log_probs, nn.NLLLoss())[0].severity == "ok"


def test_batchnorm_and_dropout_in_training_mode_at_evaluation_torch():
    model = build("torch", norm="batch")
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def good(x):
        model.eval()
        with torch.no_grad():
            return torch.softmax(model(x), dim=1)

    def forgot_eval(x):
        model.train()
        with torch.no_grad():
            return torch.softmax(model(x), dim=1)

    assert [f.severity for f in checks.check_eval_mode(good, images, model=model)] == ["ok"]
    findings = checks.check_eval_mode(forgot_eval, images, model=model)
    errors = [f for f in findings if f.severity == "error"]
    assert [f.aspect for f in errors] == ["batchnorm", "dropout"]
    assert errors[0].message.startswith("BatchNorm is in training mode at evaluation")
    assert "model.eval()" in errors[0].message
    assert any("bn1" in f.message for f in findings if f.severity == "note")
    with pytest.raises(AssertionError, match="BatchNorm is in training mode"):
        checks.assert_eval_mode(forgot_eval, images, model=model)


def test_batchnorm_without_dropout_in_training_mode_keras():
    model = build("keras", norm="batch", dropout=0.0)
    images = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype("float32")
    assert checks.check_eval_mode(lambda x: model(x, training=False), images)[0].severity == "ok"
    errors = [f.aspect for f in checks.check_eval_mode(lambda x: model(x, training=True), images)
              if f.severity == "error"]
    assert errors == ["batchnorm"]  # no dropout in this model, so only BatchNorm is named


def test_check_eval_mode_needs_two_images():
    with pytest.raises(ValueError, match="at least 2 images"):
        checks.check_eval_mode(lambda x: x, np.zeros((1, 3)))


def test_input_scaling():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 32, 32, 3)).astype("float32")
    (finding,) = checks.check_inputs(pixels)
    assert finding.severity == "error" and "raw pixel values" in finding.message and "max 255" in finding.message
    assert checks.check_inputs(pixels / 255)[0].severity == "ok"
    assert checks.check_inputs(np.full((4, 8), 0.5))[0].message.startswith("the inputs are nearly constant")
    # Divided by 255 is fine in general, but not standardized.
    assert checks.check_inputs(pixels / 255, standardized=True)[0].message.startswith("the inputs are not standardized")
    standard = (pixels / 255 - (pixels / 255).mean()) / (pixels / 255).std()
    assert checks.check_inputs(standard, standardized=True)[0].severity == "ok"
    with pytest.raises(AssertionError, match="Inputs: the inputs look like raw pixel values"):
        checks.assert_inputs(pixels)


def test_initialization():
    model = build("torch")
    assert checks.check_initialization(model)[0].severity == "ok"
    assert checks.check_initialization(torch_models.alexnet("cifar10"))[0].severity == "ok", "fc8 at zero is fine"
    with torch.no_grad():
        model.fc7.weight.zero_()
        model.conv2.weight.mul_(0.001)
    messages = {f.layer: f.message for f in checks.check_initialization(model)}
    assert set(messages) == {"conv2", "fc7"}
    assert "fc7's weights are all equal (std 0" in messages["fc7"]
    assert "fade" in messages["conv2"]


# ---------------------------------------------------------------------------------------------
# Training diagnosis
# ---------------------------------------------------------------------------------------------
def history(loss, val_accuracy, accuracy=None) -> History:
    h = History("torch", "test")
    for i, (lo, va) in enumerate(zip(loss, val_accuracy)):
        h.append(loss=lo, val_accuracy=va, accuracy=(accuracy or val_accuracy)[i])
    return h


def test_chance_accuracy_with_a_flat_loss_points_at_the_learning_rate_with_numbers():
    findings = checks.diagnose_training(history([2.3026, 2.3025, 2.3024], [0.1, 0.098, 0.102]), 10)
    text = "\n".join(f.message for f in findings)
    assert findings[0].severity == "error"
    assert "validation accuracy 10.2% after 3 epochs is at chance level (10.0% for 10 classes)" in text
    assert "ln 10 = 2.303" in text
    assert "learning rate may be too small" in text


def test_exploding_and_nan_loss_point_at_a_too_high_learning_rate():
    nan = checks.diagnose_training(history([2.3, 9.0, float("nan")], [0.1, 0.1, 0.1]), 10)
    assert nan[0].message.startswith("the training loss became nan in epoch 3") and "Lower the learning rate" in nan[0].message
    grows = checks.diagnose_training(history([2.3, 4.0, 8.0], [0.1, 0.1, 0.1]), 10)
    assert "grew from 2.300 to 8.000" in grows[0].message


def test_diagnosis_uses_inputs_model_and_predict():
    model = build("torch", norm="batch")
    images = torch.randint(0, 256, (4, 3, 32, 32)).float()

    def forgot_eval(x):
        model.train()
        return model(x).detach()

    with torch.no_grad():
        model.conv3.weight.mul_(1e-3)  # BatchNorm after it rescales: the outputs still depend on the input
    findings = checks.diagnose_training(history([2.3, 2.3], [0.1, 0.1]), 10, inputs=images, model=model,
                                        predict=forgot_eval)
    aspects = {f.aspect for f in findings if f.severity == "error"}
    assert {"accuracy", "scaling", "initialization", "batchnorm"} <= aspects


def test_a_large_initial_loss_is_pointed_out():
    findings = checks.diagnose_training(history([8.1, 2.0, 1.2], [0.3, 0.5, 0.6]), 10)
    (note,) = [f for f in findings if f.aspect == "initial loss"]
    assert "8.100 is far above ln 10 = 2.303" in note.message


def test_a_healthy_run_gets_no_blame():
    findings = checks.diagnose_training(history([1.2, 0.7, 0.5], [0.6, 0.75, 0.82], [0.62, 0.78, 0.85]), 10)
    assert [f.severity for f in findings] == ["ok"]
    assert "validation accuracy 82.0% after 3 epochs" in findings[0].message


def test_double_softmax_plateau_is_suggested_from_the_loss_alone():
    floor = checks.double_softmax_loss_floor(10)
    findings = checks.diagnose_training(history([2.2, 1.8, floor + 0.05], [0.5, 0.6, 0.65]), 10)
    assert any(f.aspect == "double softmax" for f in findings)


def test_assert_accuracy():
    good = history([1.0, 0.5], [0.7, 0.86])
    assert checks.assert_accuracy(good, 0.85, 10) == pytest.approx(0.86)
    with pytest.raises(AssertionError) as info:
        checks.assert_accuracy(history([2.3026, 2.3026], [0.1, 0.1]), 0.85, 10)
    assert str(info.value).startswith("best val accuracy 10.0% is below the required 85.0%.")
    assert "chance level" in str(info.value)
    with pytest.raises(AssertionError, match="has no 'val_accuracy'"):
        checks.assert_accuracy({"loss": [1.0]}, 0.5, 10)


def test_keras_history_and_plain_dicts_are_accepted():
    class KerasLike:
        history = {"loss": [2.3, 2.3], "val_accuracy": [0.1, 0.1]}

    assert checks.diagnose_training(KerasLike(), 10)[0].aspect == "accuracy"
    with pytest.raises(TypeError, match="dict of per-epoch lists"):
        checks.diagnose_training([0.1, 0.2], 10)


def test_torch_modules_named_in_messages():
    named = nn.Sequential(OrderedDict((n, m) for n, m in build("torch").named_children() if n != "relu5"))
    named.input_shape = (3, 32, 32)
    report = checks.check_model(named, "cifar10")
    assert report.first_failure.layer == "relu5"


def test_checks_that_run_the_model_leave_every_submodule_in_its_own_mode():
    model = build("torch", norm="batch")
    model.train()
    model.bn1.eval()  # a student may have set some modules apart: each keeps its own mode
    before = {name: m.training for name, m in model.named_modules()}
    assert checks.check_loss_setup(model, nn.CrossEntropyLoss())[0].severity == "ok"
    assert {name: m.training for name, m in model.named_modules()} == before
    checks.check_model(model, "cifar10", norm="batch")
    assert {name: m.training for name, m in model.named_modules()} == before


def test_check_loss_setup_says_to_pass_input_shape_for_a_module_that_does_not_record_it():
    model = nn.Sequential(*build("torch").children())  # the same layers, without the recorded input_shape
    with pytest.raises(ValueError, match=r"input_shape=\(H, W, C\)"):
        checks.check_loss_setup(model, nn.CrossEntropyLoss())
    assert checks.check_loss_setup(model, nn.CrossEntropyLoss(), input_shape=(32, 32, 3))[0].severity == "ok"


# ---------------------------------------------------------------------------------------------
# Own code: a model function that uses the course's builders or records is told so
# ---------------------------------------------------------------------------------------------
def own_torch_model(num_classes=10):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(num_classes))


def own_keras_model(num_classes=10):
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes)])


def course_torch_model(num_classes=10):
    return torch_models.alexnet("cifar10", num_classes=num_classes)


def course_keras_model(num_classes=10):
    return keras_models.build(*arch.describe_alexnet("cifar10", num_classes=num_classes), name="alexnet")


def classes_of_the_reference():
    return CLASSIC_224.num_classes


def model_from_a_helper(num_classes=10):
    return nn.Linear(8, classes_of_the_reference())


def model_by_a_hidden_route(num_classes=10):
    import importlib

    module = importlib.import_module(".".join(["alexnet_lab", "tor" + "ch", "models"]))
    return module.alexnet("cifar10", num_classes=num_classes)


def test_own_code_passes_and_returns_the_model():
    assert isinstance(checks.assert_own_code(own_torch_model, num_classes=3), nn.Sequential)
    assert checks.assert_own_code(own_keras_model).output_shape == (None, 10)
    assert checks.course_code_in(own_torch_model) == []


@pytest.mark.parametrize(("builder", "words"), [
    (course_torch_model, "`torch_models` in course_torch_model (alexnet_lab.torch.models)"),
    (course_keras_model, "`keras_models` in course_keras_model (alexnet_lab.keras.models)"),
    (model_from_a_helper, "`CLASSIC_224` in classes_of_the_reference (a Preset of alexnet_lab.core.architecture"),
    (model_by_a_hidden_route, "a call to alexnet_lab.torch.models.alexnet"),
])
def test_the_course_builders_and_records_are_found(builder, words):
    with pytest.raises(AssertionError, match="builds the network with the course's own model code") as info:
        checks.assert_own_code(builder)
    assert str(info.value).startswith(builder.__name__) and words in str(info.value)
    assert "Write the layers yourself" in str(info.value)


def test_defaults_and_closures_are_read_too():
    def with_default(spec=CLASSIC_224):
        return spec

    build = torch_models.build

    def with_closure():
        return build

    assert checks.course_code_in(with_default) == [
        "a default value in test_defaults_and_closures_are_read_too.<locals>.with_default (a Preset of "
        "alexnet_lab.core.architecture.presets)"]
    assert checks.course_code_in(with_closure) == [
        "`build` in test_defaults_and_closures_are_read_too.<locals>.with_closure (alexnet_lab.torch.models.build)"]
