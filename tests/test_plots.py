"""plots: training curves, the helpers every figure shares, saving figures, and the README figures."""

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg", force=True)  # no window, also when the tests run alone

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from alexnet_lab.core.history import History  # noqa: E402
from alexnet_lab.teaching import plots  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _history(framework, label="", epochs=3, offset=0.0):
    h = History(framework, label)
    for e in range(epochs):
        h.append(loss=1.0 / (e + 1) + offset, accuracy=0.5 + 0.1 * e, val_loss=1.2 / (e + 1), val_accuracy=0.45 + 0.1 * e)
    return h


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------
def test_plot_history_two_frameworks_on_one_figure():
    keras_h, torch_h = _history("keras", epochs=3), _history("torch", "PyTorch run", epochs=2)
    fig = plots.plot_history(keras_h, torch_h)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    loss_ax = fig.axes[0]
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"keras train", "keras validation", "PyTorch run train", "PyTorch run validation"}
    assert lines["keras train"].get_linestyle() == "-" and lines["keras validation"].get_linestyle() == "--"
    assert lines["keras train"].get_color() == lines["keras validation"].get_color()
    assert lines["keras train"].get_color() != lines["PyTorch run train"].get_color()
    np.testing.assert_allclose(lines["keras train"].get_ydata(), keras_h["loss"])
    np.testing.assert_array_equal(lines["PyTorch run validation"].get_xdata(), [1, 2])  # epochs count from 1


def test_plot_history_errors_and_axes():
    h = _history("torch")
    with pytest.raises(ValueError, match="top5.*accuracy, loss"):
        plots.plot_history(h, metrics=("top5",))
    with pytest.raises(ValueError, match="at least one History"):
        plots.plot_history()
    fig = Figure()
    axes = fig.subplots(1, 2)
    with pytest.raises(ValueError, match="pass as many Axes"):
        plots.plot_history(h, ax=axes[0])
    assert plots.plot_history(h, ax=list(axes)) is fig
    assert plots.plot_history(h, metrics="loss", ax=axes[0]) is fig


def test_live_curves_outside_a_notebook_prints_a_line(capsys):
    live = plots.LiveCurves(others=[_history("keras", epochs=4)])
    h = History("torch")
    for e in range(2):
        h.append(loss=1.0 - 0.1 * e, accuracy=0.5 + 0.1 * e, val_loss=1.1, val_accuracy=0.4)
        live.update(h)
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["torch epoch 1: loss 1, accuracy 0.5, val_loss 1.1, val_accuracy 0.4",
                       "torch epoch 2: loss 0.9, accuracy 0.6, val_loss 1.1, val_accuracy 0.4"]
    lines = {line.get_label(): line for line in live.figure.axes[0].get_lines()}
    assert len(lines["torch train"].get_xdata()) == 2 and len(lines["keras train"].get_xdata()) == 4


def test_live_curves_in_a_notebook_replaces_one_output(monkeypatch):
    """In a kernel, the first update displays the figure with a display id, later ones update that output."""
    pytest.importorskip("IPython")
    import IPython.display

    calls = []

    class Handle:
        def update(self, obj):
            calls.append(("update", obj))

    def fake_display(obj, display_id=False):
        calls.append(("display", obj, display_id))
        return Handle()

    monkeypatch.setattr(plots, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = plots.LiveCurves()
    h = History("torch")
    for e in range(3):
        h.append(loss=1.0 / (e + 1), accuracy=0.3 * e, val_loss=1.0, val_accuracy=0.2)
        live.update(h)
    assert [c[0] for c in calls] == ["display", "update", "update"]
    assert calls[0][2] is True
    assert all(c[1].data[:8] == b"\x89PNG\r\n\x1a\n" for c in calls)


def test_in_notebook_is_false_in_pytest():
    assert plots._in_notebook() is False


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------
def test_new_figure_is_a_grid_that_pyplot_does_not_track():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig, grid = plots.new_figure(2, 3, figsize=(6, 4))
    assert isinstance(fig, Figure) and grid.shape == (2, 3)
    assert plt.get_fignums() == before  # closed for pyplot: a notebook shows it once, as the cell's value
    assert plots.new_figure()[1].shape == (1, 1)


def test_image_grid_removes_the_unused_cells():
    fig, axes = plots.image_grid(5, 3)
    assert len(axes) == 5 and len(fig.axes) == 5
    assert not any(ax.axison for ax in axes)
    assert fig.get_size_inches() == pytest.approx((3 * 1.5, 2 * (1.5 + 0.32)))


@pytest.mark.parametrize("value, text", [(950, "950"), (4100, "4.1k"), (37_700_000, "37.7M"), (1.14e9, "1.14G")])
def test_si_format(value, text):
    assert plots.si_format(value) == text


# ---------------------------------------------------------------------------
# Saving and the README figures
# ---------------------------------------------------------------------------
def test_save_figure_writes_atomically(tmp_path):
    fig = plots.plot_history(_history("torch"))
    path = plots.save_figure(fig, tmp_path / "sub" / "curves.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "sub") == ["curves.png"]

    def broken_savefig(file, **kwargs):
        file.write(b"half an image")
        raise OSError("disk full")

    fig.savefig = broken_savefig
    with pytest.raises(OSError, match="disk full"):
        plots.save_figure(fig, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"  # the old picture is intact
    assert os.listdir(tmp_path / "sub") == ["curves.png"]  # and no temporary file is left
    with pytest.raises(ValueError, match="extension"):
        plots.save_figure(fig, tmp_path / "curves")


def test_make_figures_script(tmp_path):
    from PIL import Image

    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_figures.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(tmp_path))
    assert names == ["architecture_classic.png", "architecture_lenet5.png", "architecture_paper.png",
                     "layer_costs_classic.png", "layer_costs_lenet5.png"]
    for name in names:
        width, height = Image.open(tmp_path / name).size
        assert 500 < width <= 1600 and 300 < height <= 1000, (name, width, height)
        assert os.path.getsize(tmp_path / name) < 150_000
