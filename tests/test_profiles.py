"""Run profiles: choosing one, their settings, and the laptop time budget."""

import dataclasses

import pytest

from alexnet_lab.core import profiles


@pytest.fixture(autouse=True)
def no_choice(monkeypatch):
    """Each test starts with no profile chosen in code and no environment variable."""
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    profiles.use(None)
    yield
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    profiles.use(None)


def test_default_is_laptop():
    assert profiles.current().name == "laptop"


def test_environment_variable_chooses(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    assert profiles.current().name == "smoke"
    monkeypatch.setenv(profiles.ENV_VAR, " Full ")
    assert profiles.current().name == "full"


def test_empty_environment_variable_means_default(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "")
    assert profiles.current().name == "laptop"


def test_use_overrides_environment_and_none_goes_back(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    assert profiles.use("full").name == "full"
    assert profiles.current().name == "full"
    assert profiles.use(None).name == "smoke"
    assert profiles.current().name == "smoke"


def test_use_accepts_a_custom_profile():
    mine = dataclasses.replace(profiles.get("laptop"), epochs=2)
    assert profiles.use(mine) is mine
    assert profiles.current().epochs == 2


def test_unknown_name_lists_the_three():
    with pytest.raises(ValueError) as err:
        profiles.use("fast")
    for name in ("smoke", "laptop", "full"):
        assert name in str(err.value)
    assert profiles.current().name == "laptop"  # a failed use() changes nothing


def test_unknown_environment_variable_names_the_variable(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "quick")
    with pytest.raises(ValueError, match=f"{profiles.ENV_VAR}='quick'.*smoke, laptop, full"):
        profiles.current()


def test_names_in_order():
    assert profiles.names() == ["smoke", "laptop", "full"]


def _at_most(a, b):
    """a <= b where None means 'all' (infinitely many)."""
    return b is None or (a is not None and a <= b)


@pytest.mark.parametrize("topic", [None, *profiles.NOTEBOOKS])
def test_sizes_grow_from_smoke_to_full(topic):
    smoke, laptop, full = (profiles.get(n) for n in profiles.names())
    if topic is not None:
        smoke, laptop, full = (p.for_notebook(topic) for p in (smoke, laptop, full))
    for setting in ("per_class", "test_per_class", "max_train_batches", "max_eval_batches"):
        assert _at_most(getattr(smoke, setting), getattr(laptop, setting)), setting
        assert _at_most(getattr(laptop, setting), getattr(full, setting)), setting
    assert smoke.per_class is not None and not _at_most(laptop.per_class, smoke.per_class)
    assert smoke.epochs < laptop.epochs <= full.epochs
    assert full.per_class is None and full.test_per_class is None  # full: all the data
    assert full.max_train_batches is None and laptop.max_train_batches is None


def test_smoke_is_seconds():
    smoke = profiles.get("smoke")
    assert smoke.epochs == 1
    assert smoke.max_train_batches * smoke.batch_size <= 100
    for topic in profiles.NOTEBOOKS:
        assert smoke.for_notebook(topic).estimated_seconds("cpu") < 10, topic


@pytest.mark.parametrize("topic", list(profiles.NOTEBOOKS))
def test_laptop_fits_the_time_budget(topic):
    laptop = profiles.get("laptop").for_notebook(topic)
    seconds = laptop.estimated_seconds("cpu") * profiles.NOTEBOOKS[topic].runs
    # The CPU speeds of the CIFAR-10 notebooks are end-to-end (pipeline and validation included), and the
    # estimate counts the test set at every epoch, so it errs long: no further margin is needed.
    assert 20 < seconds <= profiles.LAPTOP_MINUTES * 60, f"{topic}: {seconds:.0f} s"


def test_full_uses_paper_like_epochs():
    full = profiles.get("full")
    assert full.for_notebook("cifar10").epochs == 30
    assert full.for_notebook("image_folder").epochs == 90  # Krizhevsky et al. 2012: ~90 epochs
    assert full.for_notebook("lenet5").epochs == 20  # LeCun et al. 1998: 20 passes


def test_estimated_seconds_arithmetic():
    p = profiles.get("laptop").for_notebook("image_folder")  # a subset: per_class is a number
    work = profiles.NOTEBOOKS["image_folder"]
    expected = p.epochs * (p.per_class * 10 / work.cpu_train_images_per_s
                           + p.test_per_class * 10 / work.cpu_eval_images_per_s)
    assert p.estimated_seconds("cpu") == pytest.approx(expected)
    assert p.estimated_seconds("gpu") < p.estimated_seconds("cpu")


def test_batch_limits_cap_the_images():
    smoke = profiles.get("smoke")
    assert smoke.train_images_per_epoch(10) == 4 * 16  # 200 available, 4 batches of 16 taken
    assert smoke.test_images(10) == 2 * 16
    laptop = profiles.get("laptop")
    assert laptop.train_images_per_epoch(10) == 5000
    assert laptop.train_images_per_epoch(10, available_per_class=30) == 300
    assert profiles.get("full").train_images_per_epoch(10) is None


def test_full_needs_data_size_for_unknown_sets():
    full = profiles.get("full").for_notebook("image_folder")
    with pytest.raises(ValueError, match="train_per_class"):
        full.estimated_seconds()
    assert full.estimated_seconds(train_per_class=100, test_per_class=10) > 0
    with pytest.raises(ValueError, match="for_notebook"):
        profiles.get("laptop").estimated_seconds()


def test_for_notebook_applies_overrides_and_rejects_unknown_topics():
    laptop = profiles.get("laptop")
    cifar = laptop.for_notebook("cifar10")
    assert cifar.topic == "cifar10"
    assert cifar.per_class == laptop.overrides["cifar10"]["per_class"]
    assert "32×32" in cifar.image_size_note
    assert laptop.topic is None  # the original is unchanged
    with pytest.raises(ValueError, match="Known topics: lenet5, fashion_mnist, cifar10"):
        laptop.for_notebook("cifar-10")


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        profiles.Profile("x", "test", per_class=1, test_per_class=1, epochs=0, batch_size=1)
    with pytest.raises(ValueError, match="per_class must be a positive integer or None"):
        profiles.Profile("x", "test", per_class=2.5, test_per_class=1, epochs=1, batch_size=1)
    with pytest.raises(ValueError, match="unknown settings"):
        profiles.Profile("x", "test", per_class=1, test_per_class=1, epochs=1, batch_size=1,
                         overrides={"cifar10": {"epoch": 3}})


def test_profiles_are_immutable():
    laptop = profiles.get("laptop")
    with pytest.raises(dataclasses.FrozenInstanceError):
        laptop.epochs = 100
    with pytest.raises(TypeError):
        laptop.overrides["cifar10"]["epochs"] = 100


def test_describe_says_what_and_how_to_switch():
    text = profiles.get("laptop").for_notebook("cifar10").describe()
    assert "'laptop'" in text and "CIFAR-10" in text
    assert "all the training images" in text and "5 epochs" in text
    # The notebook's total: one long run (Keras; PyTorch gets its weights) of the per-run estimate.
    laptop = profiles.get("laptop").for_notebook("cifar10")
    total = profiles._duration(1 * laptop.estimated_seconds("cpu"))
    assert f"Estimated training time of this notebook, the model's work alone: {total} on a 2-core CPU" in text
    assert "2-core CPU" in text and "GPU" in text
    assert "'smoke' or 'full'" in text and profiles.ENV_VAR in text
    assert "all the training images" in profiles.get("full").describe()


def test_settings_is_a_plain_dict():
    s = profiles.get("smoke").for_notebook("lenet5").settings()
    assert s["name"] == "smoke" and s["topic"] == "lenet5" and s["max_train_batches"] == 4
    assert "overrides" not in s
