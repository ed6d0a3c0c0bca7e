"""Tests of the data loaders (the package alexnet_lab/data/, but not data/preprocessing.py).

Most tests write small files of their own into ``tmp_path``: valid ones, and one for every kind
of bad input the loaders must refuse. Tests at the end use the real data sets from
``ALEXNET_LAB_DATA`` and skip when it is unset.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet_lab import data
from alexnet_lab.data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    DataFormatError,
    DataNotFoundError,
    ImageSet,
    cifar10,
    fashion_mnist,
    folders,
    sources,
)

# ---------------------------------------------------------------------------------------------
# Helpers: isolation from the machine's real data folders, and writers of small test files
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data anywhere: every searched folder points into tmp_path. Returns the cache folder."""
    for var in ("ALEXNET_LAB_DATA",):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALEXNET_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(sources, "DEBIAN_DATASETS", tmp_path / "debian")
    workdir = tmp_path / "home" / "notebooks"  # so that ./data and ../data lie inside tmp_path too
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    return tmp_path / "cache"


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes: magic 0x0000080N, N big-endian sizes, then the uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes() + array.tobytes()


def fashion_arrays(n_train=30, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def write_fashion(folder: Path, arrays=None, *, gz=True) -> dict[str, str]:
    """Write the four IDX files into ``folder``; returns the SHA-256 of each decompressed file."""
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, array in (arrays or fashion_arrays()).items():
        raw = idx_bytes(array)
        hashes[name] = hashlib.sha256(raw).hexdigest()
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return hashes


def trust(monkeypatch, hashes: dict[str, str]) -> None:
    """Make the loader accept our small test files as if they were the official release."""
    for name, digest in hashes.items():
        monkeypatch.setitem(fashion_mnist.FASHION_MNIST_SHA256, name, digest)


def cifar_arrays(per_batch=20, seed=0):
    rng = np.random.default_rng(seed)
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    return {n: (rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8), np.arange(per_batch) % 10)
            for n in names}


def write_cifar_binary(folder: Path, arrays) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in arrays.items():
        planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # R plane, G plane, B plane
        records = np.concatenate([labels[:, None].astype(np.uint8), planes], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())


def cifar_batch_dict(images, labels):
    return {b"batch_label": b"testing batch", b"labels": [int(v) for v in labels],
            b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1).copy(),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}


def write_cifar_python(folder: Path, arrays) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in arrays.items():
        (folder / name).write_bytes(pickle.dumps(cifar_batch_dict(images, labels), protocol=4))


def make_tar(archive: Path, folder: Path, arcname: str) -> None:
    mode = "w:xz" if archive.name.endswith(".xz") else "w:gz"
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname=arcname)


def write_cifar_folder(root: Path, per_class=(2, 1), seed=0) -> dict[str, list[np.ndarray]]:
    """cifar10/train/<class>/*.png and cifar10/test/<class>/*.png (lossless, so pixels compare exactly)."""
    rng = np.random.default_rng(seed)
    written = {"train": [], "test": []}
    for split, n in zip(("train", "test"), per_class):
        for name in CIFAR10_CLASSES:
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i:04d}.png")
                written[split].append(image)
    return written


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------
# The package stays light
# ---------------------------------------------------------------------------------------------


def test_the_package_re_exports_its_public_api():
    """``from alexnet_lab import data; data.load_cifar10()``: every public name is reachable from the package."""
    for name in data.__all__:
        assert getattr(data, name) is not None, name
    assert data.load_cifar10 is cifar10.load_cifar10 and data.ImageSet is ImageSet
    assert data.FASHION_MNIST_CLASSES is fashion_mnist.FASHION_MNIST_CLASSES
    assert data.SAMPLE == sources.SAMPLE == "sample"


# ---------------------------------------------------------------------------------------------
# IDX files and Fashion-MNIST
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_reads_gzip_and_plain_files(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(array)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    result, digest = data.read_idx(path, ndim=3)
    np.testing.assert_array_equal(result, array)
    assert digest == hashlib.sha256(raw).hexdigest()  # of the DECOMPRESSED bytes


def test_read_idx_refuses_wrong_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x0d\x03" + idx_bytes(np.zeros((1, 2, 2)))[4:])  # type 0x0d (float) instead of 0x08
    with pytest.raises(DataFormatError, match="magic number is 0x00000d03") as e:
        data.read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_refuses_labels_where_images_are_expected(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros(5)))
    with pytest.raises(DataFormatError, match="expected images.*swapped"):
        data.read_idx(path, ndim=3)


def test_read_idx_refuses_a_truncated_gzip_file(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(2000, dtype=np.uint8) % 251))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataFormatError, match="truncated") as e:
        data.read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_refuses_a_corrupt_gzip_stream(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(2000, dtype=np.uint8) % 251)))
    packed[-8] ^= 0xFF  # break the CRC-32 stored at the end of the gzip stream
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataFormatError, match="cannot decompress"):
        data.read_idx(path)


def test_read_idx_refuses_a_truncated_plain_file_and_trailing_bytes(tmp_path):
    raw = idx_bytes(np.zeros((3, 4, 4)))
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(DataFormatError, match="ends early"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"extra")
    with pytest.raises(DataFormatError, match="bytes after"):
        data.read_idx(tmp_path / "long")


@pytest.mark.parametrize("gz", [True, False])
def test_load_fashion_mnist_from_an_explicit_folder(tmp_path, monkeypatch, capsys, gz):
    arrays = fashion_arrays()
    trust(monkeypatch, write_fashion(tmp_path / "d" / "fashion-mnist", arrays, gz=gz))
    train, test = data.load_fashion_mnist(tmp_path / "d", download=False)
    assert isinstance(train, ImageSet) and train.classes == FASHION_MNIST_CLASSES
    assert train.images.shape == (30, 28, 28, 1) and test.images.shape == (20, 28, 28, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.images[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert f"Fashion-MNIST: 30 train + 20 test images from {tmp_path / 'd' / 'fashion-mnist'}" in capsys.readouterr().out


def test_load_fashion_mnist_finds_the_torchvision_layout(tmp_path, monkeypatch):
    trust(monkeypatch, write_fashion(tmp_path / "FashionMNIST" / "raw", gz=False))
    train, test = data.load_fashion_mnist(tmp_path)
    assert (len(train), len(test)) == (30, 20)


def test_load_fashion_mnist_refuses_content_that_is_not_the_official_release(tmp_path):
    write_fashion(tmp_path)  # valid IDX files, but not the official bytes
    with pytest.raises(DataFormatError, match="SHA-256.*not the official release") as e:
        data.load_fashion_mnist(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_load_fashion_mnist_refuses_an_image_label_count_mismatch(tmp_path, monkeypatch):
    arrays = fashion_arrays()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-1]
    trust(monkeypatch, write_fashion(tmp_path, arrays))
    with pytest.raises(DataFormatError, match="30 images but .*train-labels-idx1-ubyte.gz holds 29 labels"):
        data.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_refuses_labels_out_of_range(tmp_path, monkeypatch):
    arrays = fashion_arrays()
    arrays["t10k-labels-idx1-ubyte"][3] = 10
    trust(monkeypatch, write_fashion(tmp_path, arrays))
    with pytest.raises(DataFormatError, match="label 10 found"):
        data.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_explicit_path_with_missing_files_says_what_is_missing(tmp_path):
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError) as e:
        data.load_fashion_mnist(tmp_path, download=False)
    message = str(e.value)
    assert "3 of the 4 files (missing: t10k-labels-idx1-ubyte)" in message
    assert "zalandoresearch/fashion-mnist" in message  # where to get them


def test_load_fashion_mnist_search_order(isolated, tmp_path, monkeypatch, capsys):
    """ALEXNET_LAB_DATA, then Keras's cache, then torchvision roots, then Debian's package."""
    places = {"env": tmp_path / "env" / "fashion-mnist",
              "keras": tmp_path / "keras" / "datasets" / "fashion-mnist",
              "torchvision": tmp_path / "home" / "data" / "FashionMNIST" / "raw",  # ../data from the working dir
              "debian": tmp_path / "debian" / "fashion-mnist"}
    for folder in places.values():
        trust(monkeypatch, write_fashion(folder))

    def used() -> str:
        data.load_fashion_mnist(download=False)
        return capsys.readouterr().out

    monkeypatch.setenv("ALEXNET_LAB_DATA", str(tmp_path / "env"))
    assert f"from {places['env']}" in used()
    monkeypatch.delenv("ALEXNET_LAB_DATA")
    assert f"from {places['keras']}" in used()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "nowhere"))
    assert f"from {places['torchvision']}" in used()
    monkeypatch.chdir(tmp_path)
    assert f"from {places['debian']}" in used()


def test_sample_is_used_when_nothing_is_found_and_download_is_refused(isolated, capsys):
    train, test = data.load_fashion_mnist(download=False)
    out = capsys.readouterr().out
    assert "NOTICE" in out and "SAMPLE" in out and "download=False" in out
    assert "ALEXNET_LAB_DATA" in out and "train-images-idx3-ubyte.gz" in out  # how to get the full set
    assert train.images.shape == (1000, 28, 28, 1) and test.images.shape == (200, 28, 28, 1)
    assert list(train.class_counts()) == [100] * 10 and list(test.class_counts()) == [20] * 10
    assert train.classes == FASHION_MNIST_CLASSES and "sample" in train.name


def test_sample_can_be_asked_for_and_subset(capsys):
    train, test = data.load_cifar10(path=data.SAMPLE, per_class=5, test_per_class=2)
    assert "NOTICE" in capsys.readouterr().out
    assert train.images.shape == (50, 32, 32, 3) and test.images.shape == (20, 32, 32, 3)
    assert train.classes == CIFAR10_CLASSES


def test_bundled_samples_are_small_and_balanced():
    folder = Path(data.__file__).parent / "sample_data"
    assert sum(p.stat().st_size for p in folder.glob("*.npz")) < 3e6
    for which, shape, per_class in (("fashion_mnist", (28, 28, 1), (100, 20)), ("cifar10", (32, 32, 3), (50, 20))):
        train, test = data.load_sample(which)
        assert train.shape == shape and test.shape == shape
        assert set(train.class_counts()) == {per_class[0]} and set(test.class_counts()) == {per_class[1]}
        assert train.images.std() > 20  # real pictures, not zeros


# ---------------------------------------------------------------------------------------------
# Downloads: a local web server stands in for the internet
# ---------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _CutHandler(_QuietHandler):
    """Announces the whole file but sends only half of it, then hangs up (an interrupted download)."""

    def do_GET(self):
        body = Path(self.directory, self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def serve(tmp_path):
    """``serve(folder, handler)`` starts a web server on 127.0.0.1 for ``folder`` and returns its URL."""
    servers = []

    def start(folder: Path, handler=_QuietHandler) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _serve_fashion(tmp_path, monkeypatch, serve, handler=_QuietHandler, md5_ok=True):
    hashes = write_fashion(tmp_path / "www")
    trust(monkeypatch, hashes)
    for name in hashes:
        md5 = hashlib.md5((tmp_path / "www" / f"{name}.gz").read_bytes()).hexdigest()
        monkeypatch.setitem(fashion_mnist.FASHION_MNIST_GZ_MD5, name, md5 if md5_ok else "0" * 32)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_URLS", (serve(tmp_path / "www", handler),))


def test_download_fashion_mnist_into_the_cache_then_find_it_there(isolated, tmp_path, monkeypatch, serve, capsys):
    _serve_fashion(tmp_path, monkeypatch, serve)
    train, test = data.load_fashion_mnist()
    assert (len(train), len(test)) == (30, 20)
    assert files_under(isolated) == sorted(f"fashion-mnist/{n}.gz" for n in fashion_mnist.FASHION_MNIST_FILES.values())
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_URLS", ("http://127.0.0.1:9/",))  # nothing listens there
    train, _ = data.load_fashion_mnist()
    assert len(train) == 30 and f"from {isolated / 'fashion-mnist'}" in capsys.readouterr().out


def test_download_with_a_wrong_checksum_is_refused_and_leaves_nothing(isolated, tmp_path, monkeypatch, serve):
    _serve_fashion(tmp_path, monkeypatch, serve, md5_ok=False)
    with pytest.raises(DataFormatError, match="checksum"):
        data.load_fashion_mnist()
    assert files_under(isolated) == []


def test_interrupted_download_leaves_nothing_and_falls_back_to_the_sample(isolated, tmp_path, monkeypatch, serve,
                                                                         capsys):
    _serve_fashion(tmp_path, monkeypatch, serve, handler=_CutHandler)
    train, _ = data.load_fashion_mnist()
    assert "sample" in train.name and "the download failed" in capsys.readouterr().out
    assert files_under(isolated) == []


def test_a_damaged_file_in_the_cache_is_deleted_so_the_next_run_downloads_it(isolated, monkeypatch):
    hashes = write_fashion(isolated / "fashion-mnist")
    trust(monkeypatch, hashes)
    monkeypatch.setitem(fashion_mnist.FASHION_MNIST_SHA256, "train-images-idx3-ubyte", "0" * 64)
    with pytest.raises(DataFormatError, match="has been deleted"):
        data.load_fashion_mnist(download=False)
    assert not (isolated / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()


def test_download_cifar10_archive_then_extract_it(isolated, tmp_path, monkeypatch, serve):
    arrays = cifar_arrays()
    write_cifar_binary(tmp_path / "src" / "cifar-10-batches-bin", arrays)
    (tmp_path / "www").mkdir()
    make_tar(tmp_path / "www" / "cifar-10-binary.tar.gz", tmp_path / "src" / "cifar-10-batches-bin",
             "cifar-10-batches-bin")
    url = serve(tmp_path / "www") + "cifar-10-binary.tar.gz"
    monkeypatch.setattr(cifar10, "CIFAR10_URL", url)
    monkeypatch.setattr(cifar10, "CIFAR10_SHA256", hashlib.sha256((tmp_path / "www" / "cifar-10-binary.tar.gz")
                                                               .read_bytes()).hexdigest())
    train, test = data.load_cifar10()
    np.testing.assert_array_equal(test.images, arrays["test_batch"][0])
    assert (isolated / "cifar-10-binary.tar.gz").is_file()
    monkeypatch.setattr(cifar10, "CIFAR10_SHA256", "0" * 64)  # a second run finds the copy; no new download
    assert len(data.load_cifar10()[0]) == 100


# ---------------------------------------------------------------------------------------------
# CIFAR-10: binary and python releases, archives, JPEG folders
# ---------------------------------------------------------------------------------------------


def test_read_cifar10_binary_layout(tmp_path):
    arrays = cifar_arrays()
    write_cifar_binary(tmp_path / "cifar-10-batches-bin", arrays)
    train, test = data.load_cifar10(tmp_path, download=False)
    assert train.images.shape == (100, 32, 32, 3) and test.images.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(train.images[:20], arrays["data_batch_1"][0])  # planes -> channels-last
    np.testing.assert_array_equal(train.images[80:], arrays["data_batch_5"][0])
    np.testing.assert_array_equal(train.labels[:20], arrays["data_batch_1"][1])
    assert train.classes == CIFAR10_CLASSES


def test_read_cifar10_python_layout_equals_binary(tmp_path):
    arrays = cifar_arrays()
    write_cifar_binary(tmp_path / "bin" / "cifar-10-batches-bin", arrays)
    write_cifar_python(tmp_path / "py" / "cifar-10-batches-py", arrays)
    from_bin = data.load_cifar10(tmp_path / "bin")
    from_py = data.load_cifar10(tmp_path / "py" / "cifar-10-batches-py")  # the folder itself also works
    for a, b in zip(from_bin, from_py):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_cifar10_binary_truncated_or_bad_labels_or_missing_batch(tmp_path):
    write_cifar_binary(tmp_path / "cifar-10-batches-bin", cifar_arrays())
    batch = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    with pytest.raises(DataFormatError, match="not a whole number of CIFAR-10 records") as e:
        data.load_cifar10(tmp_path)
    assert "data_batch_3.bin" in str(e.value)
    records = bytearray(batch.read_bytes()[: 3073 * 5])
    records[3073 * 2] = 12  # label byte of the third record
    batch.write_bytes(bytes(records))
    with pytest.raises(DataFormatError, match="record 2 has label 12"):
        data.load_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").unlink()
    with pytest.raises(DataFormatError, match="missing CIFAR-10 file.*test_batch.bin"):
        data.load_cifar10(tmp_path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_python_pickle_cannot_run_code(tmp_path):
    arrays = cifar_arrays()
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_python(folder, arrays)
    marker = tmp_path / "pwned"
    batch = cifar_batch_dict(*arrays["data_batch_2"])
    batch[b"batch_label"] = _Evil(marker)
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DataFormatError, match=r"asks for posix\.system.*refused") as e:
        data.load_cifar10(tmp_path)
    assert "data_batch_2" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("change, message", [
    (lambda b: b.update({b"data": b[b"data"].astype(np.float32)}), "'data' is float32"),
    (lambda b: b.update({b"labels": b[b"labels"][:-1]}), "'labels' must be 20 integers"),
    (lambda b: b.update({b"labels": ["cat"] * 20}), "'labels' must be 20 integers"),
    (lambda b: b.update({b"extra": {1, 2}}), "unexpected entry 'extra' of type set"),
    (lambda b: b.pop(b"data"), "no 'data'"),
])
def test_cifar10_python_pickle_holding_anything_but_data_is_refused(tmp_path, change, message):
    arrays = cifar_arrays()
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_python(folder, arrays)
    batch = cifar_batch_dict(*arrays["test_batch"])
    change(batch)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DataFormatError, match=message):
        data.load_cifar10(tmp_path)


def test_cifar10_python_pickle_of_the_wrong_shape_or_garbage(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_python(folder, cifar_arrays())
    (folder / "data_batch_1").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataFormatError, match="holds a list"):
        data.load_cifar10(tmp_path)
    (folder / "data_batch_1").write_bytes(b"\x80\x04 this is not a pickle at all")
    with pytest.raises(DataFormatError, match="not a readable CIFAR-10 python batch"):
        data.load_cifar10(tmp_path)


def test_cifar10_archive_is_extracted_into_the_cache_not_the_data_folder(isolated, tmp_path):
    arrays = cifar_arrays()
    write_cifar_python(tmp_path / "src" / "cifar-10-batches-py", arrays)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_tar(data_dir / "cifar-10-python.tar.gz", tmp_path / "src" / "cifar-10-batches-py", "cifar-10-batches-py")
    train, test = data.load_cifar10(data_dir)
    np.testing.assert_array_equal(train.images[20:40], arrays["data_batch_2"][0])
    assert files_under(data_dir) == ["cifar-10-python.tar.gz"]  # the data folder is left alone
    extracted = list((isolated / "extracted").iterdir())
    assert len(extracted) == 1 and (extracted[0] / "cifar-10-batches-py" / "test_batch").is_file()


def test_corrupt_archive_is_refused_and_leaves_no_extraction_behind(isolated, tmp_path):
    write_cifar_binary(tmp_path / "src" / "cifar-10-batches-bin", cifar_arrays())
    archive = tmp_path / "data" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    make_tar(archive, tmp_path / "src" / "cifar-10-batches-bin", "cifar-10-batches-bin")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="cannot unpack") as e:
        data.load_cifar10(archive.parent)
    assert str(archive) in str(e.value)
    assert files_under(isolated / "extracted") == [] and list((isolated / "extracted").iterdir()) == []


def test_archive_with_a_path_escaping_the_folder_is_refused(isolated, tmp_path):
    archive = tmp_path / "data" / "cifar10-jpg.tar.xz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:xz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(DataFormatError, match="cannot unpack"):
        data.load_cifar10(archive.parent)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_cifar10_image_folder_is_decoded_once_then_read_from_the_cache(isolated, tmp_path, monkeypatch, capsys):
    written = write_cifar_folder(tmp_path / "data")
    train, test = data.load_cifar10(tmp_path / "data")
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (10, 32, 32, 3)
    assert list(train.class_counts()) == [2] * 10 and list(test.labels) == list(range(10))
    np.testing.assert_array_equal(train.images, np.stack(written["train"]))
    assert "Decoding" in capsys.readouterr().out

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(folders, "decode_images", no_decoding)
    again, _ = data.load_cifar10(tmp_path / "data")
    np.testing.assert_array_equal(again.images, train.images)
    # Adding an image changes the folder, so the cache no longer applies.
    Image.fromarray(written["test"][0]).save(tmp_path / "data" / "cifar10" / "test" / "cat" / "0009.png")
    with pytest.raises(AssertionError, match="decoded again"):
        data.load_cifar10(tmp_path / "data")


def test_damaged_decode_cache_is_rebuilt(isolated, tmp_path, capsys):
    write_cifar_folder(tmp_path / "data")
    first, _ = data.load_cifar10(tmp_path / "data")
    (cached,) = (isolated / "decoded").iterdir()
    (cached / "train_images.npy").write_bytes((cached / "train_images.npy").read_bytes()[:500])
    again, _ = data.load_cifar10(tmp_path / "data")
    np.testing.assert_array_equal(again.images, first.images)
    assert "unreadable" in capsys.readouterr().out


def test_cifar10_folder_with_wrong_classes_is_refused(tmp_path):
    write_cifar_folder(tmp_path / "data")
    (tmp_path / "data" / "cifar10" / "train" / "truck").rename(tmp_path / "data" / "cifar10" / "train" / "lorry")
    with pytest.raises(DataFormatError, match="expected .*'truck'"):
        data.load_cifar10(tmp_path / "data")


def test_cifar10_not_found_offline_says_where_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="cifar-10-binary.tar.gz.*cs.toronto.edu"):
        data.load_cifar10(tmp_path / "empty", download=False)


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


def _mixed_modes_folder(root: Path) -> None:
    """Two classes with one image in each of the modes a student's folder may hold, plus junk."""
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    rgba = Image.new("RGBA", (8, 6), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent: becomes white
    rgba.save(root / "cat" / "rgba.png")
    Image.new("L", (8, 6), 77).save(root / "cat" / "gray.png")
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(root / "cat" / "cmyk.jpg")
    palette = Image.new("P", (8, 6), 0)
    palette.putpalette([10, 20, 30] * 256)
    palette.save(root / "dog" / "palette.gif")
    Image.fromarray(np.full((6, 8), 65535, dtype=np.uint16)).save(root / "dog" / "sixteen.png")
    Image.new("RGB", (8, 6), (1, 2, 3)).save(root / "dog" / "rgb.bmp")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")


def test_image_folder_converts_every_mode_to_rgb_and_skips_non_images(tmp_path, capsys):
    _mixed_modes_folder(tmp_path / "pets")
    train, test = data.load_image_folder(tmp_path / "pets", test_fraction=0.34)
    assert train.classes == ("cat", "dog")
    assert train.shape == (6, 8, 3) and (len(train), len(test)) == (4, 2)
    out = capsys.readouterr().out
    assert "skipped 2 non-image entries" in out
    everything = data.load_image_folder(tmp_path / "pets", test_fraction=0.5)
    images = np.concatenate([s.images for s in everything])
    pixels = {tuple(img[1, 1]) for img in images}
    assert {(255, 0, 0), (77, 77, 77), (10, 20, 30), (255, 255, 255), (1, 2, 3)} <= pixels
    assert any(tuple(img[0, 0]) == (255, 255, 255) and tuple(img[1, 1]) == (255, 0, 0) for img in images)
    cmyk = np.asarray(Image.open(tmp_path / "pets" / "cat" / "cmyk.jpg").convert("RGB"))
    assert any(np.array_equal(img, cmyk) for img in images)


def test_image_folder_reports_every_unreadable_image(tmp_path):
    _mixed_modes_folder(tmp_path / "pets")
    good = io.BytesIO()
    Image.new("RGB", (8, 6), (9, 9, 9)).save(good, "JPEG")
    (tmp_path / "pets" / "dog" / "cut.jpg").write_bytes(good.getvalue()[:60])
    (tmp_path / "pets" / "cat" / "fake.jpg").write_bytes(b"this is text, not a JPEG")
    with pytest.raises(DataFormatError, match="2 image file") as e:
        data.load_image_folder(tmp_path / "pets")
    assert str(tmp_path / "pets" / "dog" / "cut.jpg") in str(e.value)
    assert str(tmp_path / "pets" / "cat" / "fake.jpg") in str(e.value)


def test_decode_images_gives_the_folder_loaders_pixels_and_lists_unreadable_files(tmp_path):
    _mixed_modes_folder(tmp_path / "pets")
    paths = [tmp_path / "pets" / "cat" / "gray.png", tmp_path / "pets" / "dog" / "rgb.bmp"]
    images = data.decode_images(paths)
    assert images.shape == (2, 6, 8, 3) and images.dtype == np.uint8
    assert tuple(images[0, 1, 1]) == (77, 77, 77) and tuple(images[1, 1, 1]) == (1, 2, 3)
    assert data.decode_images(paths, image_size=4).shape == (2, 4, 4, 3)
    (tmp_path / "fake.png").write_bytes(b"not a PNG")
    with pytest.raises(DataFormatError, match="1 image file") as e:
        data.decode_images([paths[0], tmp_path / "fake.png"])
    assert str(tmp_path / "fake.png") in str(e.value)


def test_image_folder_with_an_empty_class_or_a_single_class(tmp_path):
    _mixed_modes_folder(tmp_path / "pets")
    (tmp_path / "pets" / "bird").mkdir()
    (tmp_path / "pets" / "bird" / "readme.txt").write_text("todo")
    with pytest.raises(ValueError, match="class 'bird' has no images"):
        data.load_image_folder(tmp_path / "pets")
    only = tmp_path / "only"
    (only / "cat").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(only / "cat" / "a.png")
    with pytest.raises(ValueError, match="only the class folder 'cat'.*at least two"):
        data.load_image_folder(only)


def test_image_folder_of_different_sizes_needs_image_size(tmp_path):
    for name, size in (("a", (40, 30)), ("b", (20, 50))):
        for i in range(3):
            (tmp_path / "pics" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (i * 50, 0, 0)).save(tmp_path / "pics" / name / f"{i}.png")
    with pytest.raises(ValueError, match="different sizes.*image_size="):
        data.load_image_folder(tmp_path / "pics")
    train, test = data.load_image_folder(tmp_path / "pics", image_size=16)
    assert train.shape == test.shape == (16, 16, 3)


def test_image_folder_split_is_stratified_reproducible_and_uses_train_test_folders(tmp_path):
    rng = np.random.default_rng(1)
    for name, n in (("a", 10), ("b", 20)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(tmp_path / "pics" / name / f"{i}.png")
    train, test = data.load_image_folder(tmp_path / "pics", test_fraction=0.2, seed=3)
    assert list(train.class_counts()) == [8, 16] and list(test.class_counts()) == [2, 4]
    again, _ = data.load_image_folder(tmp_path / "pics", test_fraction=0.2, seed=3)
    other, _ = data.load_image_folder(tmp_path / "pics", test_fraction=0.2, seed=4)
    np.testing.assert_array_equal(train.images, again.images)
    assert not np.array_equal(train.images, other.images)
    few, _ = data.load_image_folder(tmp_path / "pics", per_class=5, seed=3)
    assert list(few.class_counts()) == [5, 5]
    # With train/ and test/ folders, those are used as they are.
    (tmp_path / "split").mkdir()
    (tmp_path / "pics").rename(tmp_path / "split" / "train")
    (tmp_path / "split" / "test" / "a").mkdir(parents=True)
    (tmp_path / "split" / "test" / "b").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (4, 4)).save(tmp_path / "split" / "test" / name / "x.png")
    train, test = data.load_image_folder(tmp_path / "split")
    assert list(train.class_counts()) == [10, 20] and list(test.class_counts()) == [1, 1]


def test_make_image_folder_round_trip(tmp_path):
    train, test = data.random_dataset(n_train=60, n_test=30, image_shape=(8, 8, 3), num_classes=3, seed=2)
    out = data.make_image_folder((train, test), tmp_path / "two", classes=("class 0", "class 2"), format="png",
                                 per_class=4)
    back_train, back_test = data.load_image_folder(out)
    assert back_train.classes == ("class 0", "class 2")
    assert list(back_train.class_counts()) == [4, 4]
    assert list(back_test.class_counts()) == list(test.class_counts()[[0, 2]])
    expected = np.concatenate([test.images[test.labels == 0], test.images[test.labels == 2]])
    np.testing.assert_array_equal(back_test.images, expected)  # PNG is lossless
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    with pytest.raises(FileExistsError, match="not empty"):
        data.make_image_folder((train, test), out, classes=("class 0", "class 1"))
    with pytest.raises(ValueError, match="Unknown class"):
        data.make_image_folder((train, test), tmp_path / "x", classes=("cat", "dog"))


# ---------------------------------------------------------------------------------------------
# Random data, subsets and splits
# ---------------------------------------------------------------------------------------------


def test_random_dataset():
    train, test = data.random_dataset(n_train=50, n_test=20, image_shape=(5, 6, 2), num_classes=4, seed=1)
    assert train.images.shape == (50, 5, 6, 2) and test.images.shape == (20, 5, 6, 2)
    assert train.images.dtype == np.uint8 and train.classes == ("class 0", "class 1", "class 2", "class 3")
    assert train.labels.max() <= 3
    again, _ = data.random_dataset(n_train=50, n_test=20, image_shape=(5, 6, 2), num_classes=4, seed=1)
    other, _ = data.random_dataset(n_train=50, n_test=20, image_shape=(5, 6, 2), num_classes=4, seed=2)
    np.testing.assert_array_equal(train.images, again.images)
    assert not np.array_equal(train.images, other.images)


def _labelled(n_per_class=(30, 20, 10)):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)  # each image tells its index
    perm = np.random.default_rng(0).permutation(len(labels))
    return ImageSet(images[perm].copy(), labels[perm].astype(np.int64), ("a", "b", "c"), "toy train")


def test_per_class_subset_is_reproducible_and_nested(capsys):
    toy = _labelled()
    five = data.per_class_subset(toy, 5, seed=0)
    assert list(five.class_counts()) == [5, 5, 5]
    np.testing.assert_array_equal(five.images, data.per_class_subset(toy, 5, seed=0).images)
    assert not np.array_equal(five.images, data.per_class_subset(toy, 5, seed=1).images)
    eight = data.per_class_subset(toy, 8, seed=0)
    assert set(five.images.ravel()) <= set(eight.images.ravel())
    many = data.per_class_subset(toy, 15, seed=0)
    assert list(many.class_counts()) == [15, 15, 10] and "c (10)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="positive int"):
        data.per_class_subset(toy, 0)


def test_validation_split_is_stratified_disjoint_and_complete():
    toy = _labelled()
    rest, val = data.validation_split(toy, 0.1, seed=0)
    assert list(val.class_counts()) == [3, 2, 1] and list(rest.class_counts()) == [27, 18, 9]
    ids = np.concatenate([rest.images.ravel(), val.images.ravel()])
    assert sorted(ids) == sorted(toy.images.ravel())
    assert (rest.name, val.name) == ("toy train", "toy val")
    again = data.validation_split(toy, 0.1, seed=0)[1]
    np.testing.assert_array_equal(val.images, again.images)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        data.validation_split(toy, 1.0)


def test_split_8_1_1_halves_the_test_set():
    train = _labelled((40, 40, 40))
    test = _labelled((10, 6, 4))
    kept, val, held_out = data.split_8_1_1(train, test, seed=0)
    assert kept is train
    assert list(val.class_counts()) == [5, 3, 2] and list(held_out.class_counts()) == [5, 3, 2]
    assert not set(val.images.ravel()) & set(held_out.images.ravel())
    assert len(val) + len(held_out) == len(test)
    other_val = data.split_8_1_1(train, test, seed=1)[1]
    assert not np.array_equal(val.images, other_val.images)


# ---------------------------------------------------------------------------------------------
# The real data sets (ALEXNET_LAB_DATA; tests/conftest.py points it at ../shared/data)
# ---------------------------------------------------------------------------------------------

real_data = pytest.mark.skipif(not os.environ.get("ALEXNET_LAB_DATA"),
                               reason="ALEXNET_LAB_DATA is not set: no real data sets on this machine")


@real_data
def test_real_fashion_mnist(capsys):
    train, test = data.load_fashion_mnist(download=False)
    assert "SAMPLE" not in capsys.readouterr().out
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert list(train.class_counts()) == [6000] * 10 and list(test.class_counts()) == [1000] * 10
    assert train.classes == FASHION_MNIST_CLASSES and train.classes[9] == "Ankle boot"
    assert 60 < train.images.mean() < 90  # Fashion-MNIST's mean pixel is about 72.9
    kept, val, held_out = data.split_8_1_1(train, test, seed=0)
    assert (len(kept), len(val), len(held_out)) == (60000, 5000, 5000)
    assert list(val.class_counts()) == [500] * 10 and list(held_out.class_counts()) == [500] * 10
    a, _ = data.load_fashion_mnist(download=False, per_class=50, seed=7)
    b, _ = data.load_fashion_mnist(download=False, per_class=50, seed=7)
    c, _ = data.load_fashion_mnist(download=False, per_class=50, seed=8)
    assert list(a.class_counts()) == [50] * 10
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


@real_data
def test_real_cifar10(capsys):
    train, test = data.load_cifar10(download=False)
    assert "SAMPLE" not in capsys.readouterr().out
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert list(train.class_counts()) == [5000] * 10 and list(test.class_counts()) == [1000] * 10
    assert train.classes == CIFAR10_CLASSES
    means = train.images.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(means, [125.3, 123.0, 113.9], atol=2.0)  # CIFAR-10's known channel means
    small, small_test = data.load_cifar10(download=False, per_class=20, test_per_class=10, seed=0)
    assert list(small.class_counts()) == [20] * 10 and len(small_test) == 100
