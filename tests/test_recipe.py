"""recipe and ablations: the paper's ingredients as switches, the ablation runner, its verdicts and plot, ten crops."""

import os

import numpy as np
import pytest

from alexnet_lab.core.history import History
from alexnet_lab.data import ImageSet, preprocessing
from alexnet_lab.teaching import ablations, recipe
from alexnet_lab.teaching.recipe import FULL_RECIPE, INGREDIENTS, Recipe

torch = pytest.importorskip("torch")


def random_set(n=48, shape=(32, 32, 3), classes=3, seed=0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, classes, n),
                    tuple(f"c{i}" for i in range(classes)), "random")


# --------------------------------------------------------------------------------------------
# The recipe as switches
# --------------------------------------------------------------------------------------------

def test_the_default_recipe_is_the_papers():
    r = Recipe()
    assert (r.lr, r.momentum, r.weight_decay, r.dropout, r.pca_noise) == (0.01, 0.9, 5e-4, 0.5, 0.1)
    assert r.schedule == "step" and not r.nesterov
    assert r.ingredients() == list(INGREDIENTS)


def test_the_short_run_recipe_is_the_papers_ingredients_with_a_one_cycle_rate():
    short = recipe.SHORT_RUN
    assert short.ingredients() == list(INGREDIENTS)
    options = short.fit_options(25)
    assert options == {"lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                       "schedule": "onecycle", "step_every": None}
    assert short.without("schedule").fit_options(25)["schedule"] is None
    assert short.without("momentum").fit_options(25)["nesterov"] is False  # Nesterov needs momentum
    with pytest.raises(ValueError, match="Received: schedule='cosine'"):
        Recipe(schedule="cosine")


def test_without_augmentation_switches_off_crops_flips_and_pca_noise_together():
    r = Recipe().without("augmentation")
    assert not r.crops_flips and r.pca_noise == 0 and r.dropout == 0.5
    assert r.ingredients() == ["momentum", "weight_decay", "schedule", "dropout"]


@pytest.mark.parametrize("ingredient", list(INGREDIENTS))
def test_without_switches_off_exactly_one_ingredient(ingredient):
    r = Recipe().without(ingredient)
    assert r.ingredients() == [name for name in INGREDIENTS if name != ingredient]
    assert r.lr == Recipe().lr  # "no momentum" keeps the learning rate


def test_without_an_unknown_ingredient_lists_the_known_ones():
    with pytest.raises(ValueError, match="momentum, weight_decay, schedule, dropout, crops_flips, pca_noise"):
        Recipe().without("batchnorm")


@pytest.mark.parametrize("bad", [{"lr": 0}, {"momentum": 1.0}, {"dropout": 1.0}, {"weight_decay": -1e-4},
                                 {"pca_noise": -0.1}])
def test_impossible_settings_are_refused(bad):
    with pytest.raises(ValueError, match="Recipe"):
        Recipe(**bad)


def test_variants_are_the_full_recipe_then_one_off_each():
    plan = recipe.variants()
    assert list(plan) == [FULL_RECIPE, "without momentum", "without weight decay", "without schedule",
                          "without dropout", "without crops/flips", "without PCA noise"]
    assert plan["without dropout"].dropout == 0 and plan["without dropout"].momentum == 0.9
    assert list(recipe.variants(leave_out=["schedule", "augmentation"])) == [
        FULL_RECIPE, "without schedule", "without augmentation"]


@pytest.mark.parametrize("epochs, step_every", [(1, 1), (3, 2), (5, 4), (6, 4), (30, 20)])
def test_the_schedule_divides_by_ten_once_for_the_last_third(epochs, step_every):
    options = Recipe().fit_options(epochs)
    assert options["schedule"] == "step" and options["step_every"] == step_every
    # Exactly one division within the run: step_every < epochs + 1 and 2 * step_every >= epochs.
    lrs = [0.01 * 0.1 ** (e // step_every) for e in range(epochs)]
    assert len({round(lr, 12) for lr in lrs}) == (2 if epochs > 1 else 1)
    off = Recipe(schedule=None).fit_options(epochs)
    assert off["schedule"] is None and off["step_every"] is None


def test_preprocess_switches_the_augmentations():
    train = random_set()
    full = Recipe().preprocess(train)
    assert full.augment and full.flip and full.crop == "pad" and full.crop_padding == 4 and full.lighting_std == 0.1
    plain = Recipe(crops_flips=False, pca_noise=0.0).preprocess(train)
    assert not plain.flip and plain.crop_padding == 0 and plain.lighting_std == 0
    assert plain.mean == full.mean and plain.std == full.std  # the same statistics either way
    # With crops, flips and colour noise off, a training batch is the images themselves (in shuffled order).
    plan = next(preprocessing.batch_plans(len(train), plain.geometry(train.shape[:2]), plain, 3, batch_size=8,
                                      shuffle=True, seed=0, epoch=0))
    assert (plan.rows == np.arange(32)).all() and (plan.cols == np.arange(32)).all()
    assert not plan.color_shift.any()
    assert Recipe(crop_padding=2).preprocess(train).crop_padding == 2


# --------------------------------------------------------------------------------------------
# Ten crops
# --------------------------------------------------------------------------------------------

def test_test_time_images_for_both_crop_schemes():
    train = random_set()
    pad_pre = Recipe().preprocess(train)
    big, pad = recipe.test_time_preprocess(pad_pre)
    assert pad == 4 and not big.augment and big.image_size is None
    resize_pre = Recipe(crop_padding=16).preprocess(train, image_size=227)
    assert resize_pre.crop == "resize"
    big, pad = recipe.test_time_preprocess(resize_pre)
    assert pad == 0 and big.image_size == 227 + 2 * 16 and big.crop_padding == 0 and not big.augment


class TinyNet(torch.nn.Module):
    """A 1×1 convolution, then a 2×2 average pool of the whole image into 4 regions, then a linear layer.

    The regions make the output depend on where the crop is, so the ten crops give ten different answers.
    """

    def __init__(self, classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.fc = torch.nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def _manual_ten_crops(model, images: np.ndarray, pre: preprocessing.Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """Ten-crop probabilities computed the long way, with NumPy slicing."""
    x = (images.astype(np.float32) / 255 - np.array(pre.mean, np.float32)) / np.array(pre.std, np.float32)
    p = pre.crop_padding
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))        # zeros after normalization: the mean colour
    s = images.shape[1]
    corners = [(0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p), (p, p)]
    crops = [x[:, t:t + s, l_:l_ + s] for t, l_ in corners]
    crops += [c[:, :, ::-1] for c in crops]
    with torch.no_grad():
        probs = [torch.softmax(model(torch.from_numpy(c.transpose(0, 3, 1, 2).copy())), 1).numpy() for c in crops]
    return probs[4], np.mean(probs, axis=0)


def test_ten_crop_predict_torch_matches_a_hand_computation():
    torch.manual_seed(0)
    model = TinyNet()
    test = random_set(n=20, seed=3)
    pre = Recipe().preprocess(random_set(seed=1))
    result = recipe.ten_crop_predict(model, test, pre, batch_size=8)
    center, ten = _manual_ten_crops(model, test.images, pre)
    np.testing.assert_allclose(result.center, center, atol=1e-5)
    np.testing.assert_allclose(result.ten_crops, ten, atol=1e-5)
    assert (result.labels == test.labels).all()
    assert not np.allclose(result.center, result.ten_crops)  # the crops do change the answer
    assert result.center_accuracy == pytest.approx((center.argmax(1) == test.labels).mean())
    assert result.ten_crop_accuracy == pytest.approx((ten.argmax(1) == test.labels).mean())
    # max_batches limits the images.
    assert len(recipe.ten_crop_predict(model, test, pre, batch_size=8, max_batches=1).labels) == 8


def test_ten_crop_predict_keras_gives_the_same_as_torch_for_the_same_weights():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    torch.manual_seed(0)
    tiny = TinyNet()
    k = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 1, activation="relu"),
                          keras.layers.AveragePooling2D(16), keras.layers.Permute((3, 1, 2)),
                          keras.layers.Flatten(), keras.layers.Dense(3)])
    k.layers[0].set_weights([tiny.conv.weight.detach().numpy().transpose(2, 3, 1, 0), tiny.conv.bias.detach().numpy()])
    k.layers[-1].set_weights([tiny.fc.weight.detach().numpy().T, tiny.fc.bias.detach().numpy()])
    test = random_set(n=12, seed=4)
    pre = Recipe().preprocess(random_set(seed=1))
    from_torch = recipe.ten_crop_predict(tiny, test, pre, batch_size=8)
    from_keras = recipe.ten_crop_predict(k, test, pre, batch_size=8)
    np.testing.assert_allclose(from_keras.center, from_torch.center, atol=1e-5)
    np.testing.assert_allclose(from_keras.ten_crops, from_torch.ten_crops, atol=1e-5)


# --------------------------------------------------------------------------------------------
# The ablation
# --------------------------------------------------------------------------------------------

def test_variants_start_from_the_same_weights():
    import alexnet_lab
    from alexnet_lab.torch import models as torch_models

    states = []
    for dropout in (0.5, 0.0):
        alexnet_lab.seed_everything(7, frameworks=("torch",))
        states.append(torch_models.alexnet("cifar10", dropout=dropout).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.fixture(scope="module")
def small_ablation():
    train, test = random_set(n=48, classes=3, seed=0), random_set(n=16, classes=3, seed=1)
    lines = []
    ablation = ablations.run_ablation(train, test, epochs=1, batch_size=8, max_batches=1, leave_out=("dropout",),
                                      seeds=(0, 1), width=0.25, recipe=Recipe(dropout=0.25), progress=False,
                                      report=lines.append)
    return ablation, lines, (train, test)


def test_run_ablation_trains_every_variant_and_seed(small_ablation):
    ablation, lines, _ = small_ablation
    assert [(r.label, r.seed) for r in ablation.runs] == [(FULL_RECIPE, 0), ("without dropout", 0),
                                                          (FULL_RECIPE, 1), ("without dropout", 1)]
    assert ablation.labels() == [FULL_RECIPE, "without dropout"] and ablation.epochs == 1
    assert len(lines) == 4 and lines[1].startswith("without dropout") and "on its training images" in lines[1]
    for run in ablation.runs:
        assert run.history.epochs == 1 and 0 <= run.accuracy <= 1 and 0 <= run.train_accuracy <= 1
        assert run.seconds > 0 and run.history.info["max_batches"] == 1
        assert "val_accuracy" not in run.history.metrics  # measured once, after the last epoch
    assert ablation.runs[1].recipe.dropout == 0
    assert ablation.mean(FULL_RECIPE) == pytest.approx(np.mean(ablation.accuracies(FULL_RECIPE)))
    with pytest.raises(KeyError, match="without schedule"):
        ablation.accuracies("without schedule")


def test_a_run_accuracy_is_the_models_accuracy_on_the_test_images(small_ablation):
    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.torch import training as torch_training

    ablation, _, (train, test) = small_ablation
    model, pre = ablation.model(), ablation.preprocess()
    probs, labels = torch_training.predict(model, torch_pipeline.make_batches(test, pre.without_augmentation()))
    assert ablation.runs[0].accuracy == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert len(labels) == len(test) == 16


def _hand_made(full, without, train=0.9):
    runs = [ablations.Run(label, seed, Recipe(), History("torch"), 1.0, acc, train)
            for label, accs in ((FULL_RECIPE, full), ("without x", without)) for seed, acc in enumerate(accs)]
    return ablations.Ablation(runs=runs, epochs=3)


def test_verdicts_come_from_the_standard_error_of_the_paired_differences():
    helps = _hand_made([0.60, 0.62, 0.61], [0.55, 0.56, 0.57])  # gains 0.05, 0.06, 0.04
    gain, se = helps.difference("without x")
    assert gain == pytest.approx(0.05) and se == pytest.approx(0.01 / np.sqrt(3))
    assert helps.verdict("without x") == "the ingredient helps"
    assert helps.standard_error() == pytest.approx(np.std([0.60, 0.62, 0.61], ddof=1) / np.sqrt(3))
    # The seeds move both variants together: the pairs decide, not the spread of each variant's seeds.
    paired = _hand_made([0.50, 0.60, 0.70], [0.49, 0.59, 0.69])
    assert paired.verdict("without x") == "the ingredient helps" and paired.difference("without x")[1] < 1e-9
    assert _hand_made([0.60, 0.55, 0.62], [0.58, 0.59, 0.60]).verdict("without x") == "no clear effect"
    assert _hand_made([0.50, 0.51, 0.52], [0.55, 0.56, 0.58]).verdict("without x") == "the ingredient hurts"
    assert _hand_made([0.6], [0.5]).verdict("without x") == "one seed: no verdict"
    table = helps.table()
    assert "+5.0 ± 0.6 pts" in table and "the ingredient helps" in table and table.count("\n") == 3


def test_run_ablation_keeps_the_full_recipe_model_and_preprocessing(small_ablation):
    ablation, _, (train, _) = small_ablation
    model = ablation.model()
    assert isinstance(model, torch.nn.Module) and [k for k, _ in ablation.models] == [FULL_RECIPE]
    assert ablation.preprocess().mean == preprocessing.channel_stats(train)[0]
    with pytest.raises(KeyError, match="keep_models"):
        ablation.model("without dropout")


def test_the_same_seed_gives_the_same_run(small_ablation):
    ablation, _, (train, test) = small_ablation
    again = ablations.run_ablation(train, test, epochs=1, batch_size=8, max_batches=1, leave_out=(), seeds=(0,),
                                   width=0.25, recipe=Recipe(dropout=0.25), progress=False, report=None)
    assert again.runs[0].history["loss"] == ablation.runs[0].history["loss"]
    assert again.runs[0].accuracy == ablation.runs[0].accuracy


def test_plot_ablation_draws_one_bar_per_variant(small_ablation):
    ablation, _, _ = small_ablation
    fig = ablations.plot_ablation(ablation, chance=1 / 3)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() == pytest.approx(0.6)]
    assert [b.get_width() for b in bars] == pytest.approx([ablation.mean(FULL_RECIPE),
                                                           ablation.mean("without dropout")])
    assert [t.get_text() for t in ax.get_yticklabels()] == [FULL_RECIPE, "without dropout"]
    assert ax.get_title() and "standard errors" in ax.get_xlabel()
    with pytest.raises(ValueError, match="no runs"):
        ablations.plot_ablation(ablations.Ablation())


def test_describe_says_what_is_on_and_off():
    assert "one-cycle lr" in recipe.SHORT_RUN.describe() and "Nesterov momentum 0.9" in recipe.SHORT_RUN.describe()
    text = Recipe().without("pca_noise").without("schedule").describe()
    assert "momentum 0.9" in text and "no PCA noise" in text and "constant lr" in text
    assert "crops + flips" in text and "dropout 0.5" in text
