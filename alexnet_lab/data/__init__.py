"""Data sets for the course: Fashion-MNIST, CIFAR-10, image folders and random data.

Every loader returns ``(train, test)``: two :class:`ImageSet` objects holding uint8 images
``(N, H, W, C)``, integer labels ``(N,)`` and the class names::

    from alexnet_lab import data
    train, test = data.load_fashion_mnist()                 # 60,000 + 10,000 images of 28x28x1
    train, test = data.load_cifar10(per_class=500)          # 5,000 + 10,000 images of 32x32x3
    train, val, test = data.split_8_1_1(train, test)        # official test set halved: val + test
    train, test = data.load_image_folder("my_photos", image_size=64)

The modules, all re-exported here (``data.load_cifar10`` is ``data.cifar10.load_cifar10``):
:mod:`~alexnet_lab.data.imageset` (:class:`ImageSet`, the errors, random data, subsets and splits),
:mod:`~alexnet_lab.data.sources` (where data is looked for, downloads, the cache, the bundled samples),
:mod:`~alexnet_lab.data.fashion_mnist`, :mod:`~alexnet_lab.data.cifar10`, :mod:`~alexnet_lab.data.folders`
(your own images) and :mod:`~alexnet_lab.data.preprocessing` (batches, crops and augmentation; not
re-exported: ``from alexnet_lab.data import preprocessing``).

Where the data is looked for
----------------------------
When ``path`` is given, only there (``path="sample"`` picks the small bundled sample). Otherwise,
in this order (:func:`data_locations` lists the folders on your machine):

1. the folder named by the environment variable ``ALEXNET_LAB_DATA``;
2. Keras's cache, ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), where
   ``keras.datasets.fashion_mnist`` / ``cifar10`` store their downloads;
3. the usual torchvision roots: ``./data``, ``../data``, ``$TORCH_HOME`` and ``$TORCH_HOME/datasets``
   (default ``~/.cache/torch``); torchvision has no default root, these are the common choices;
4. Debian's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist`` (Fashion-MNIST only);
5. the alexnet-lab cache folder (``ALEXNET_LAB_CACHE``, default ``~/.cache/alexnet-lab`` on Linux),
   where earlier downloads went;
6. a download into the cache folder (``download=True``, the default), with a progress bar,
   checked against a known checksum and written atomically by `pooch <https://www.fatiando.org/pooch>`_:
   an interrupted or corrupted download never leaves a file that a later run accepts;
7. if all of that fails (offline, or ``download=False``), the small sample that ships inside the
   package, with a notice saying so and how to get the full set.

Inside each folder these layouts are recognised:

* Fashion-MNIST: the four IDX files (``train-images-idx3-ubyte`` ... , gzip-compressed or not) in
  ``fashion-mnist/``, ``FashionMNIST/raw/`` (torchvision) or the folder itself. Their decompressed
  content must match the official release's SHA-256 (repackagers such as Debian recompress the
  gzip streams, so the ``.gz`` files' own hashes differ).
* CIFAR-10: ``cifar-10-batches-bin/`` (the official binary release, preferred: it needs no pickle),
  ``cifar-10-batches-py/`` (the python release, read with a restricted unpickler), the archives
  ``cifar-10-binary.tar.gz`` / ``cifar-10-python.tar.gz`` / ``cifar10-jpg.tar.xz``, or the image-folder
  layout ``cifar10/train/<class>/*.jpg`` + ``cifar10/test/<class>/*.jpg``. Archives are extracted
  into the cache folder (the data folder may be read-only); the 60,000 decoded JPEGs are cached
  there as .npy files, so the second load takes well under a second.

Anything malformed (truncated gzip, wrong IDX header, image/label count mismatch, checksum
mismatch, a pickle holding anything but CIFAR data, an unreadable image) raises
:class:`DataFormatError` naming the file and what is wrong: bad data is never returned.
"""

from __future__ import annotations

from alexnet_lab.data.cifar10 import CIFAR10_CLASSES, load_cifar10, read_cifar10_binary, read_cifar10_python
from alexnet_lab.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx
from alexnet_lab.data.folders import decode_images, load_image_folder, make_image_folder
from alexnet_lab.data.imageset import (
    DataFormatError,
    DataNotFoundError,
    ImageSet,
    per_class_subset,
    random_dataset,
    split_8_1_1,
    validation_split,
)
from alexnet_lab.data.sources import SAMPLE, cache_dir, data_locations, load_sample

__all__ = [
    "ImageSet",
    "DataFormatError",
    "DataNotFoundError",
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "SAMPLE",
    "load_fashion_mnist",
    "load_cifar10",
    "load_image_folder",
    "load_sample",
    "random_dataset",
    "per_class_subset",
    "split_8_1_1",
    "validation_split",
    "make_image_folder",
    "decode_images",
    "read_idx",
    "read_cifar10_binary",
    "read_cifar10_python",
    "data_locations",
    "cache_dir",
]
