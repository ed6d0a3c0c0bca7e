"""Run profiles: how much data and how many epochs a notebook trains on.

The same notebook has to run in three places, so it asks a *profile* for its sizes:

* ``smoke``: seconds per notebook, for CI and tests. Tiny subsets, one epoch, a few
  batches. The numbers it prints mean nothing; it only proves that the code runs.
* ``laptop`` (the default): a student's CPU. Each training notebook finishes within 15
  minutes on the course's 2-core CPU (the whole series within 100) and shows its idea.
* ``full``: a GPU. All the data, paper-like numbers of epochs.

A notebook chooses its profile in its parameters cell (tagged ``parameters``, so
papermill can set ``PROFILE`` too)::

    PROFILE = None  # "smoke", "laptop" or "full"; None: ALEXNET_LAB_PROFILE or "laptop"
    profile = profiles.use(PROFILE).for_notebook("cifar10")
    print(profile.describe())

and then reads its settings: ``profile.per_class``, ``profile.epochs``, ``profile.batch_size``...
Outside a notebook, set the environment variable before starting Python or Jupyter::

    ALEXNET_LAB_PROFILE=full jupyter lab

Where the numbers come from
---------------------------
Every setting lives in :data:`PROFILES` below: change them there and nowhere else. The
laptop sizes are budgets of training time, worked out from the measured speeds in
:data:`NOTEBOOKS`: images trained per epoch × epochs ÷ training images/s, plus the test
images × epochs ÷ evaluation images/s, for each of the notebook's training runs (most
notebooks train twice: in Keras and in PyTorch). ``tests/test_profiles.py`` checks that
every laptop setting stays within :data:`LAPTOP_MINUTES` by that estimate, so a change that
would make a notebook slow fails a test rather than a student's afternoon. The README's
expected-results table has each notebook's measured wall time (``scripts/expected_results.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

__all__ = [
    "Profile", "Workload", "PROFILES", "NOTEBOOKS", "LAPTOP_MINUTES", "ENV_VAR", "DEFAULT",
    "names", "get", "use", "current",
]

ENV_VAR = "ALEXNET_LAB_PROFILE"
DEFAULT = "laptop"
LAPTOP_MINUTES = 15  # the most a laptop-profile training notebook may take on the reference CPU (seed 0, alone)


# ---------------------------------------------------------------------------
# What each training notebook trains, and how fast that goes.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """The model and data of one training notebook, with the measured speeds behind the time estimates.

    Speeds are images per second in float32: ``train`` is a full step (forward, backward, SGD
    update), ``eval`` a forward pass only. ``cpu``: the course's 2-core reference machine (AMD
    EPYC, AVX2). For the ``cifar10`` preset (and the notebooks that train it) ``train`` is the
    measured end-to-end rate of notebook 05's laptop run on 2026-11-23 (whole epochs: input
    pipeline with augmentation, training and validation; PyTorch 71, Keras with XLA 88 images/s;
    ``cifar10`` takes their mean as it trains once in each); ``eval`` is an estimate (the training
    rate × 2.8, the ratio measured on an x86-64 server). Likewise ``fashion_mnist``: notebook 06's
    laptop run, PyTorch 15, Keras 16 images/s end to end (``eval`` × 2.9). The other CPU speeds were measured
    with random images on a 2-thread x86-64 server CPU that trains classic AlexNet at 31
    images/s, as fast as the reference machine (about 30 images/s). ``gpu``: one NVIDIA H100,
    batches of 256, one run, with random images; when reading images is the bottleneck, it takes
    longer. ``runs``: how many training runs with these settings the notebook's work amounts to.
    """

    title: str
    image_size_note: str
    num_classes: int
    cpu_train_images_per_s: float
    cpu_eval_images_per_s: float
    gpu_train_images_per_s: float
    gpu_eval_images_per_s: float
    runs: int = 2


# Measured 2026-11 (see Workload for how); re-measure if the models change.
# Batches of 64 (LeNet-5: 128; AlexNet at 227×227 on the CPU: 32).
NOTEBOOKS: Mapping[str, Workload] = MappingProxyType({
    "lenet5": Workload(
        "LeNet-5 on Fashion-MNIST", "28×28 grayscale images as they are", 10,
        cpu_train_images_per_s=13_000, cpu_eval_images_per_s=35_000,
        gpu_train_images_per_s=210_000, gpu_eval_images_per_s=1_400_000),
    # Notebook 06: the compact preset with one channel on a CPU (its PyTorch long run; LeNet-5 and a short Keras
    # run add about a tenth), the upsampling fashion_mnist preset on a GPU (full profile). CPU: measured with the
    # notebook's recipe on one thread of an Intel Xeon (as fast as the 2-core reference for these networks):
    # 687-765 images/s end to end (2026-12-04); evaluation about 3,000/s.
    "fashion_mnist": Workload(
        "AlexNet-shaped networks on Fashion-MNIST: compact (28×28) on a CPU, upsampled to 227×227 on a GPU",
        "28×28 grayscale images (upsampled to 227×227 inside the model on a GPU)", 10,
        cpu_train_images_per_s=700, cpu_eval_images_per_s=3_000,
        gpu_train_images_per_s=14_000, gpu_eval_images_per_s=45_000, runs=1),
    # Notebook 05: the compact preset (BatchNorm) on a CPU, the cifar10 preset on a GPU (full profile). CPU:
    # the measured end-to-end rate of its Keras long run (crops and flips in tf.data, float32), one thread of
    # an Intel Xeon, which trains this network as fast as the 2-core reference machine does: 438 images/s
    # (2026-12-04); evaluation measured at about 2,000/s. GPU: the cifar10 preset's figures (H100, above).
    "cifar10": Workload(
        "AlexNet-shaped networks on CIFAR-10: compact on a CPU, the cifar10 preset on a GPU",
        "32×32 colour images as they are", 10,
        cpu_train_images_per_s=438, cpu_eval_images_per_s=2_000,
        gpu_train_images_per_s=70_000, gpu_eval_images_per_s=230_000, runs=1),
    "image_folder": Workload(
        "classic AlexNet on a folder of photos", "colour images resized to 227×227", 10,
        cpu_train_images_per_s=31, cpu_eval_images_per_s=96,
        gpu_train_images_per_s=13_000, gpu_eval_images_per_s=41_000),
    # Notebook 07: the full recipe and four variants, three seeds each: 15 PyTorch runs of the half-width compact
    # network (BatchNorm) on 2,000 images for 22 epochs. CPU: about 1,100 images/s in training, float32, on one
    # core of the course's AMD EPYC (2026-12-07). Each run is measured once after its last epoch (10,000 test and
    # 2,000 training images, about 8 s), not after every epoch as the estimate counts: spread over 22 epochs that
    # is about 30,000 images/s.
    "recipe": Workload(
        "the paper's training recipe, one ingredient at a time (half-width compact network, PyTorch)",
        "32×32 colour images as they are", 10,
        cpu_train_images_per_s=1_100, cpu_eval_images_per_s=30_000,
        gpu_train_images_per_s=70_000, gpu_eval_images_per_s=230_000, runs=15),
    # Notebook 08: a half-width compact teacher (BatchNorm) trained by PyTorch on the 40,000 images of 8 CIFAR-10
    # classes, then 31 short runs on 50 or 200 cat and dog photos (about 2 minutes) and one Keras run. CPU: the
    # teacher trained at 970 images/s on one core of the reference CPU (AMD EPYC, 2026-12-07); the rate below
    # spreads the whole notebook's model time over the 50,000 images per epoch that the estimate counts.
    "own_images": Workload(
        "cats vs dogs from CIFAR-10: a half-width compact teacher on the other 8 classes, then fine-tuning",
        "32×32 colour images as they are", 10,
        cpu_train_images_per_s=600, cpu_eval_images_per_s=3_000,
        gpu_train_images_per_s=70_000, gpu_eval_images_per_s=230_000, runs=1),
    # Notebook 01: the paper's Figure 1, a four-layer conv net (10.7 M MACs per image,
    # activations.describe_figure1_net) trained with ReLU and with tanh in PyTorch on all 50,000 images, each
    # stopping at 25 % training error, after a learning-rate grid and a hypothesis grid (16 short runs of 200
    # batches, about 100 s). CPU: float32, channels-last, batches of 64, one core of the course's AMD EPYC
    # (2026-12-07): ReLU 2,100-2,300, tanh 1,900-2,000 images/s. ``runs=2``: two runs of at most ``epochs``
    # epochs bound the work (seed 0: ReLU 8 epochs, tanh 11, plus the grids: about 23 epochs). Its GPU
    # speeds were not measured: taken to be the cifar10 preset's (an underestimate for a smaller net).
    "relu_vs_tanh": Workload(
        "ReLU vs tanh, a small four-layer conv net on CIFAR-10 (the paper's Figure 1)",
        "32×32 colour images as they are", 10,
        cpu_train_images_per_s=2_000, cpu_eval_images_per_s=3_000,
        gpu_train_images_per_s=70_000, gpu_eval_images_per_s=230_000, runs=2),
    # Notebook 04: short runs of the compact network (no BatchNorm; about 400 training images/s in float32 on
    # one core) on CIFAR-10 subsets and random data: one batch memorized, random labels memorized (with
    # BatchNorm), a healthy run and four failures, then the study note's network in plain Keras (as written,
    # stuck, three one-change runs) and the fix: about 12 runs.
    "smoke_test": Workload(
        "checks before a long run, the classic ways training fails, and a stuck network fixed (compact network)",
        "32×32 colour images as they are", 10,
        cpu_train_images_per_s=400, cpu_eval_images_per_s=2_000,
        gpu_train_images_per_s=70_000, gpu_eval_images_per_s=230_000, runs=12),
})


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
def _check_count(profile: Profile, name: str, allow_none: bool) -> None:
    value = getattr(profile, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive integer" + (" or None (all)" if allow_none else "")
        raise ValueError(f"Profile {profile.name!r}: {name} must be {allowed}, got {value!r}.")


def _smaller(a: int | None, b: int | None) -> int | None:
    """The smaller of two sizes where ``None`` means unlimited."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def _size(n: int | None, which: str) -> str:
    return f"all the {which} images" if n is None else f"{n:,} images per class"


def _batch_limits(p: Profile) -> str:
    limits = []
    if p.max_train_batches is not None:
        limits.append(f"at most {p.max_train_batches} training batches per epoch")
    if p.max_eval_batches is not None:
        limits.append(f"at most {p.max_eval_batches} test batches")
    return f" ({', '.join(limits)})" if limits else ""


def _duration(seconds: float) -> str:
    """A rounded, readable duration: '< 1 s', '40 s', '8 min', '2.5 h'."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """The settings of one run profile. ``None`` in a size means "all of it".

    Attributes:
        name: ``"smoke"``, ``"laptop"`` or ``"full"``.
        description: what the profile is for, in one line.
        per_class: training images per class (a class-balanced subset), ``None``: all.
        test_per_class: test images per class, ``None``: all.
        epochs: passes over the (subset of the) training data.
        batch_size: images per training step.
        max_train_batches: stop each epoch after this many batches, ``None``: all.
        max_eval_batches: evaluate on at most this many batches, ``None``: all.
        image_size_note: how the images are sized (set by :meth:`for_notebook`).
        topic: the notebook these settings are for (set by :meth:`for_notebook`), ``None``: generic.
        overrides: per-notebook changes, ``{topic: {setting: value}}``.
    """

    name: str
    description: str
    per_class: int | None
    test_per_class: int | None
    epochs: int
    batch_size: int
    max_train_batches: int | None = None
    max_eval_batches: int | None = None
    image_size_note: str = "images at the model's own input size"
    topic: str | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        for name in ("per_class", "test_per_class", "max_train_batches", "max_eval_batches"):
            _check_count(self, name, allow_none=True)
        for name in ("epochs", "batch_size"):
            _check_count(self, name, allow_none=False)
        # Freeze the overrides too, so that a profile cannot change under a notebook's feet.
        frozen = MappingProxyType({t: MappingProxyType(dict(o)) for t, o in self.overrides.items()})
        object.__setattr__(self, "overrides", frozen)
        settings = {f.name for f in fields(self)} - {"name", "overrides", "topic"}
        for topic, changes in frozen.items():
            unknown = set(changes) - settings
            if unknown:
                raise ValueError(f"Profile {self.name!r}: overrides for {topic!r} set unknown settings "
                                 f"{sorted(unknown)}; settings are {sorted(settings)}.")

    def for_notebook(self, topic: str) -> Profile:
        """These settings adjusted for one notebook's model and data.

        ``topic`` is one of :data:`NOTEBOOKS` (``"lenet5"``, ``"fashion_mnist"``, ``"cifar10"``,
        ``"image_folder"``, ``"recipe"``, ``"own_images"``). A notebook that trains something new adds an
        entry there and, where the generic sizes do not fit, overrides in :data:`PROFILES`.
        """
        if topic not in NOTEBOOKS:
            raise ValueError(f"Unknown notebook topic {topic!r}. Known topics: {', '.join(NOTEBOOKS)}. "
                             "Add a Workload for a new one to alexnet_lab.core.profiles.NOTEBOOKS.")
        changes = dict(self.overrides.get(topic, {}))
        changes.setdefault("image_size_note", NOTEBOOKS[topic].image_size_note)
        return replace(self, topic=topic, **changes)

    def settings(self) -> dict[str, Any]:
        """The settings as a plain dict (for a History's ``info``, or to print)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "overrides"}

    # -- sizes and time ------------------------------------------------------
    def train_images_per_epoch(self, num_classes: int, available_per_class: int | None = None) -> int | None:
        """Training images seen per epoch for ``num_classes`` classes; ``None`` if it is all of an unknown amount."""
        per_class = _smaller(self.per_class, available_per_class)
        images = None if per_class is None else per_class * num_classes
        if self.max_train_batches is not None:
            images = _smaller(images, self.max_train_batches * self.batch_size)
        return images

    def test_images(self, num_classes: int, available_per_class: int | None = None) -> int | None:
        """Test images evaluated after each epoch; ``None`` if it is all of an unknown amount."""
        per_class = _smaller(self.test_per_class, available_per_class)
        images = None if per_class is None else per_class * num_classes
        if self.max_eval_batches is not None:
            images = _smaller(images, self.max_eval_batches * self.batch_size)
        return images

    def estimated_seconds(self, device: str = "cpu", train_per_class: int | None = None,
                          test_per_class: int | None = None) -> float:
        """Estimated model time of ONE training run of this notebook on ``"cpu"`` (2 cores) or ``"gpu"``.

        The notebook does ``NOTEBOOKS[topic].runs`` of them (e.g. one in Keras, one in PyTorch);
        :meth:`describe` prints the notebook's total.

        Needs a topic (see :meth:`for_notebook`). Where the profile takes all the data,
        pass the data set's size per class (Fashion-MNIST: 6,000 train and 1,000 test;
        CIFAR-10: 5,000 and 1,000, the defaults used when the topic is one of those).
        """
        if self.topic is None:
            raise ValueError("estimated_seconds needs a notebook topic: call profile.for_notebook(topic) first.")
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}.")
        work = NOTEBOOKS[self.topic]
        known = _DATA_PER_CLASS.get(self.topic, (None, None))
        train_per_class = train_per_class or known[0]
        test_per_class = test_per_class or known[1]
        train = self.train_images_per_epoch(work.num_classes, train_per_class)
        test = self.test_images(work.num_classes, test_per_class)
        if train is None or test is None:
            raise ValueError(f"Profile {self.name!r} uses all the data of {self.topic!r}: pass train_per_class= "
                             "and test_per_class= (the data set's images per class) to estimate its time.")
        speed = {"cpu": (work.cpu_train_images_per_s, work.cpu_eval_images_per_s),
                 "gpu": (work.gpu_train_images_per_s, work.gpu_eval_images_per_s)}[device]
        return self.epochs * (train / speed[0] + test / speed[1])

    def describe(self) -> str:
        """One short paragraph: which profile, what it means, how long it takes, and how to switch."""
        topic = f" ({NOTEBOOKS[self.topic].title})" if self.topic else ""
        text = (f"Run profile {self.name!r}{topic}: {self.description}. "
                f"Trains on {_size(self.per_class, 'training')} and tests on {_size(self.test_per_class, 'test')} "
                f"({self.image_size_note}), {self.epochs} epoch{'s' if self.epochs != 1 else ''} of batches of "
                f"{self.batch_size}{_batch_limits(self)}. ")
        if self.topic is not None:
            try:
                cpu, gpu = self.estimated_seconds("cpu"), self.estimated_seconds("gpu")
            except ValueError:  # all the data of a data set whose size is not known here
                pass
            else:
                runs = NOTEBOOKS[self.topic].runs
                text += (f"Estimated training time of this notebook, the model's work alone: "
                         f"{_duration(runs * cpu)} on a 2-core CPU, {_duration(runs * gpu)} on a GPU (H100). ")
        others = " or ".join(repr(n) for n in PROFILES if n != self.name)
        return text + (f"Switch with PROFILE = {others} in the parameters cell, or {ENV_VAR}=... "
                       "before starting Jupyter.")


# Images per class in the course's data sets, for time estimates of the profiles that use all of them.
_DATA_PER_CLASS = {"lenet5": (6000, 1000), "fashion_mnist": (6000, 1000), "cifar10": (5000, 1000),
                   "recipe": (5000, 1000), "own_images": (5000, 1000), "relu_vs_tanh": (5000, 1000)}


# The settings. Laptop numbers are budgets, worked out (estimated_seconds, 2-core CPU) as
# (per training run; each notebook does two, one per framework, unless it says otherwise):
#   lenet5         all 60,000 images × 10 epochs at 13,000 images/s             ~ 1 min
#   fashion_mnist  all 60,000 images × 8 epochs at 700/s (compact), 10,000 tests ~ 12 min, one run (PyTorch; Keras
#                  gets its weights; LeNet-5 and a short Keras run add about a minute)
#   cifar10        all 50,000 images × 5 epochs at 438/s (compact), 10,000 tests ~ 10 min, one run (Keras; PyTorch
#                  gets its weights; two short runs of 10,240 images add under a minute)
#   image_folder   1,000 images × 5 epochs at 31/s, 200 tests × 5 at 96/s       ~ 3 min
#   recipe         2,000 images × 22 epochs at 1,100/s, 10,000 tests once        ~ 47 s, 15 runs: ~ 12 min
#   own_images     all 50,000 images × 4 epochs at 600/s, 10,000 tests ~ 6 min, one run (the teacher, PyTorch, on
#                  the 40,000 images of 8 classes; the fine-tuning runs on a few photos; see NOTEBOOKS)
#   relu_vs_tanh   all 50,000 images × at most 15 epochs at 2,000/s, each run stopping at 25 % training error
#                  ~ 6 min, 2 runs: at most ~ 12.5 min (seed 0 measured: about 10 min, see NOTEBOOKS)
#   smoke_test     2,000 images × 4 epochs at 400/s, 1,000 tests × 4 at 2,000/s ~ 20 s, 12 runs (see NOTEBOOKS)
# AlexNet at 227×227 costs 1.1 GMACs per image, so on a CPU it sees few images: notebook authors,
# adjust these from your notebook's measured epoch times (print History's epoch_time_s).
PROFILES: Mapping[str, Profile] = MappingProxyType({
    "smoke": Profile(
        name="smoke",
        description="seconds per notebook, for CI and tests: it checks that the code runs, its accuracies mean nothing",
        per_class=20, test_per_class=10, epochs=1, batch_size=16, max_train_batches=4, max_eval_batches=2,
        overrides={"relu_vs_tanh": {"epochs": 3}},  # three points on the curve of notebook 01's figure
    ),
    "laptop": Profile(
        name="laptop",
        description=f"for a student's CPU: a training notebook takes at most {LAPTOP_MINUTES} minutes on the "
                    "course's 2-core CPU (the README's expected-results table has each one's measured time)",
        per_class=500, test_per_class=100, epochs=5, batch_size=64,
        overrides={
            "lenet5": {"per_class": None, "test_per_class": None, "epochs": 10, "batch_size": 128},
            "fashion_mnist": {"per_class": None, "test_per_class": None, "epochs": 8, "batch_size": 128},
            "cifar10": {"per_class": None, "test_per_class": None, "epochs": 5, "batch_size": 128},
            "image_folder": {"per_class": 100, "test_per_class": 20, "epochs": 5, "batch_size": 32},
            "recipe": {"per_class": 200, "test_per_class": None, "epochs": 22, "batch_size": 128},
            "own_images": {"per_class": None, "test_per_class": None, "epochs": 4, "batch_size": 128},
            "relu_vs_tanh": {"per_class": None, "test_per_class": 10, "epochs": 15},
            "smoke_test": {"per_class": 200, "test_per_class": 100, "epochs": 4},
        },
    ),
    "full": Profile(
        name="full",
        description="for a GPU: all the data, paper-like numbers of epochs",
        per_class=None, test_per_class=None, epochs=30, batch_size=128,
        overrides={
            # LeCun et al. (1998) trained LeNet-5 for 20 passes; Krizhevsky et al. (2012) AlexNet for about 90.
            "lenet5": {"epochs": 20},
            "image_folder": {"epochs": 90},
            # The paper's Figure 1 runs to about 35 epochs; tanh needs room to reach 25% training error.
            "relu_vs_tanh": {"epochs": 40},
            # Notebook 04 shows short runs: what goes wrong shows in the first epochs.
            "smoke_test": {"epochs": 10},
        },
    ),
})


# ---------------------------------------------------------------------------
# Choosing the active profile
# ---------------------------------------------------------------------------
_chosen: Profile | None = None  # set by use(); None: follow the environment variable


def names() -> list[str]:
    """The names of the profiles, from the smallest to the largest."""
    return list(PROFILES)


def get(name: str) -> Profile:
    """The profile called ``name``; an unknown name raises a ``ValueError`` listing the three."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return PROFILES[key]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown run profile {name!r}. Choose one of: {', '.join(PROFILES)} "
                         f"(e.g. PROFILE = 'smoke' in the parameters cell, or {ENV_VAR}=smoke).") from None


def use(profile: str | Profile | None = None) -> Profile:
    """Make ``profile`` the active one and return it; ``None`` goes back to the environment variable or the default.

    This is what a notebook's parameters cell calls: ``profile = profiles.use(PROFILE)``.
    A :class:`Profile` of your own (e.g. ``dataclasses.replace(profiles.get("laptop"), epochs=2)``)
    is accepted too.
    """
    global _chosen
    if profile is None:
        _chosen = None
    elif isinstance(profile, Profile):
        _chosen = profile
    else:
        _chosen = get(profile)
    return current()


def current() -> Profile:
    """The active profile: the one chosen with :func:`use`, else ``$ALEXNET_LAB_PROFILE``, else ``"laptop"``."""
    if _chosen is not None:
        return _chosen
    from_env = os.environ.get(ENV_VAR, "").strip()
    if not from_env:
        return PROFILES[DEFAULT]
    try:
        return get(from_env)
    except ValueError:
        raise ValueError(f"The environment variable {ENV_VAR}={from_env!r} names no run profile. "
                         f"Set it to one of: {', '.join(PROFILES)}, or unset it for {DEFAULT!r}.") from None
