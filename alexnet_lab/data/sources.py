"""Where data sets are looked for, downloaded and cached, and the small samples bundled with the package.

The search order (:func:`data_locations`), the download (:func:`download_file`: pooch, checked against a
known hash, written atomically), the cache folder (:func:`cache_dir`), the fallback to the bundled
sample (:func:`load_sample`) and :func:`locate`, which ties them together for each loader. The
order and the layouts recognised in each folder are described in :mod:`alexnet_lab.data`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_lab.data.imageset import DataFormatError, DataNotFoundError, ImageSet, per_class_subset, say

__all__ = [
    "SAMPLE",
    "DEBIAN_DATASETS",
    "cache_dir",
    "data_locations",
    "is_in_cache",
    "atomic_folder",
    "DownloadFailed",
    "download_file",
    "SampleReason",
    "locate",
    "load_sample",
    "load_sample_with_notice",
    "finish_loading",
]

#: Pass ``path=SAMPLE`` to a loader to use the small sample bundled with the package.
SAMPLE = "sample"
#: Where Debian's dataset packages (``dataset-fashion-mnist``) install their files.
DEBIAN_DATASETS = Path("/usr/share/datasets")


# --------------------------------------------------------------------------------------------
# Where data is looked for
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """The alexnet-lab cache folder: ``$ALEXNET_LAB_CACHE``, else pooch's per-user cache folder.

    Downloads, extracted archives and decoded image folders go here (created when first needed).
    """
    env = os.environ.get("ALEXNET_LAB_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    import pooch

    return Path(pooch.os_cache("alexnet-lab")).absolute()


def data_locations() -> list[tuple[str, Path]]:
    """The folders searched when no ``path`` is given, in order, each with why it is searched."""
    keras_datasets = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"
    torch_home = Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch").expanduser()
    places = []
    if os.environ.get("ALEXNET_LAB_DATA"):
        places.append(("ALEXNET_LAB_DATA", Path(os.environ["ALEXNET_LAB_DATA"]).expanduser()))
    places += [
        ("Keras cache", keras_datasets),
        ("Keras cache", keras_datasets / "cifar-10-batches-py-target"),  # where Keras 3 unpacks CIFAR-10
        ("torchvision root", Path("data")),
        ("torchvision root", Path("..") / "data"),
        ("torchvision root", torch_home),
        ("torchvision root", torch_home / "datasets"),
        ("Debian package", DEBIAN_DATASETS),
        ("alexnet-lab cache", cache_dir()),
    ]
    unique, seen = [], set()
    for why, folder in places:
        folder = Path(os.path.abspath(folder))  # absolute, with ".." resolved
        if folder not in seen:
            seen.add(folder)
            unique.append((why, folder))
    return unique


def is_in_cache(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside the alexnet-lab cache folder (so it may be deleted and fetched again)."""
    return cache_dir() in Path(path).absolute().parents


def atomic_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Create the folder ``target`` by ``fill(tmp)`` on a temp folder beside it, renamed when complete.

    If ``fill`` fails, the temp folder is removed: ``target`` either exists complete or not at all.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process created the same folder first: keep theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Downloads (pooch)
# --------------------------------------------------------------------------------------------

class DownloadFailed(ConnectionError):
    """Every download mirror failed for network reasons (offline, server down)."""


def download_file(urls: Sequence[str], known_hash: str, folder: Path, fname: str) -> Path:
    """Download ``fname`` from the first mirror that works into ``folder``, verified by ``known_hash``.

    pooch streams into a temp file in ``folder``, checks the hash and only then renames it to
    ``fname``, so a failed or interrupted download leaves nothing that a later run would accept.

    Raises:
        DataFormatError: a mirror served a file with the wrong checksum.
        DownloadFailed: every mirror failed for network reasons.
    """
    import pooch

    errors = []
    for url in urls:
        try:
            downloader = pooch.HTTPDownloader(progressbar=True, timeout=30)
            return Path(pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder,
                                       downloader=downloader, progressbar=True))
        except ValueError as e:  # pooch's hash mismatch
            raise DataFormatError(f"The download of {fname} from {url} failed its checksum check and was "
                                  f"discarded: {e}") from e
        except Exception as e:  # requests' network errors, OSError, ...
            errors.append(f"{url}: {type(e).__name__}: {e}")
    raise DownloadFailed(f"Could not download {fname}:\n  " + "\n  ".join(errors))


# --------------------------------------------------------------------------------------------
# Searching, then downloading, then the sample: shared by the loaders of both data sets
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleReason:
    """Why the bundled sample is used instead of the full data set."""

    text: str
    help: str = ""


def locate(path, title: str, find: Callable, needed: str, get_help: str, fetch: Callable | None):
    """Find a data set: ``path`` only if given, else the search list, then a download, then the sample.

    ``find(root, partial)`` returns what was found under ``root`` or None (noting incomplete copies
    in the list ``partial``); ``fetch()`` downloads the data set (None: no download). Returns what
    ``find`` or ``fetch`` returned, or a :class:`SampleReason`.
    """
    partial: list[str] = []
    if path is not None and os.fspath(path) == SAMPLE:
        return SampleReason(f'path="{SAMPLE}" was given')
    if path is not None:
        root = Path(path).expanduser()
        result = find(root, partial) if root.exists() else None
        if result is None:
            raise DataNotFoundError(f"{title} was not found in {root}" + (": " + "; ".join(partial) if partial else "")
                                    + f". Expected the files {needed} there (or in a sub-folder named as in the "
                                    f"alexnet_lab.data docstring). {get_help}")
        return result
    places = data_locations()
    for _why, root in places:
        if root.exists():
            result = find(root, partial)
            if result is not None:
                return result
    searched = "\n".join(f"  - {root} ({why})" for why, root in places)
    notes = "".join(f"\n  note: {p}" for p in partial)
    help_text = (f"{title} needs the files {needed}. {get_help}\nPut them in a folder (for example ~/data/) and set "
                 f"the environment variable ALEXNET_LAB_DATA to that folder, or pass path=... to the loader.\n"
                 f"Searched:\n{searched}{notes}")
    if fetch is None:
        return SampleReason("download=False and the full data set was not found", help_text)
    try:
        return fetch()
    except DownloadFailed as e:
        return SampleReason(f"the download failed (offline?): {e}", help_text)


def load_sample(which: str) -> tuple[ImageSet, ImageSet]:
    """The bundled sample ``"fashion_mnist"`` or ``"cifar10"`` as ``(train, test)``, without any notice."""
    from importlib.resources import files

    resource = files("alexnet_lab.data") / "sample_data" / f"{which}_sample.npz"
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        classes = tuple(str(c) for c in npz["classes"])
        return tuple(ImageSet(npz[f"{s}_images"], npz[f"{s}_labels"].astype(np.int64), classes,
                              f"{which} sample {s}") for s in ("train", "test"))


def load_sample_with_notice(which: str, reason: SampleReason, per_class, test_per_class,
                            seed) -> tuple[ImageSet, ImageSet]:
    """The small sample bundled in ``alexnet_lab/data/sample_data``, announced with a visible notice."""
    train, test = load_sample(which)
    title = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}[which]
    full = {"fashion_mnist": "60,000 + 10,000", "cifar10": "50,000 + 10,000"}[which]
    lines = [
        f"NOTICE: using the small {title} SAMPLE bundled with alexnet-lab: {len(train):,} train + {len(test):,} test "
        f"images ({train.class_counts()[0]} + {test.class_counts()[0]} per class) instead of the full {full}.",
        f"Why: {reason.text}.",
        "Accuracies measured on the sample are lower and noisier than on the full data set.",
    ]
    if reason.help:
        lines.append("To use the full data set: " + reason.help)
    bar = "=" * 100
    say("\n".join([bar, *lines, bar]))
    return _subsets(train, test, per_class, test_per_class, seed)


def _subsets(train, test, per_class, test_per_class, seed) -> tuple[ImageSet, ImageSet]:
    if per_class is not None:
        train = per_class_subset(train, per_class, seed=seed)
    if test_per_class is not None:
        test = per_class_subset(test, test_per_class, seed=seed)
    return train, test


def finish_loading(title, train, test, where, per_class, test_per_class, seed,
                   detail="") -> tuple[ImageSet, ImageSet]:
    """Take the per-class subsets and print the one line that says what was loaded from where."""
    n_train, n_test = len(train), len(test)
    train, test = _subsets(train, test, per_class, test_per_class, seed)
    counts = [f"{len(train):,} train" + (f" (of {n_train:,})" if len(train) != n_train else ""),
              f"{len(test):,} test" + (f" (of {n_test:,})" if len(test) != n_test else "")]
    say(f"{title}: {counts[0]} + {counts[1]} images from {where}{detail}")
    return train, test
