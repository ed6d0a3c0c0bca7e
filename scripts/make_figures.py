"""Regenerate the README's figures in images/ from the framework-free architecture descriptions.

    python scripts/make_figures.py            # writes images/*.png
    python scripts/make_figures.py --out DIR  # somewhere else

Needs only numpy and matplotlib (no TensorFlow, no PyTorch), so it runs in a second or two.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no window

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from alexnet_lab.core import architecture  # noqa: E402
from alexnet_lab.teaching import diagrams, plots  # noqa: E402

DPI = 100


def figures():
    """(file name, function that makes the figure) for every README figure."""
    return [
        ("architecture_classic.png", lambda: diagrams.plot_architecture("classic")),
        ("architecture_paper.png", lambda: diagrams.plot_architecture("paper")),
        ("architecture_lenet5.png", lambda: diagrams.plot_architecture("lenet5")),
        ("layer_costs_classic.png", lambda: diagrams.plot_layer_costs(architecture.layer_table("classic"),
                                                                      name="AlexNet (classic)")),
        ("layer_costs_lenet5.png", lambda: diagrams.plot_layer_costs(architecture.layer_table("lenet5"),
                                                                     name="LeNet-5")),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "images"),
                        help="folder to write the PNG files to (default: images/)")
    args = parser.parse_args(argv)
    for name, make in figures():
        path = plots.save_figure(make(), os.path.join(args.out, name), dpi=DPI)
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
