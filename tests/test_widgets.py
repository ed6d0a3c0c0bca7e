"""The conv1 explorer: its pure arithmetic, and the sliders that show it."""

from __future__ import annotations

import pytest

from alexnet_lab.core import architecture as arch
from alexnet_lab.teaching import widgets


def test_defaults_reproduce_the_preset_table():
    result = widgets.explore_conv1("classic")
    assert result.fits
    assert list(result.rows) == arch.layer_table("classic")
    assert result.totals["params"] == 62_378_344
    assert result.row("conv1").output_shape == (55, 55, 96)
    assert "55×55×96" in result.message
    assert "fc6" in result.text and "62,378,344" in result.text


def test_changed_conv1_changes_every_later_layer():
    result = widgets.explore_conv1("classic", kernel=7, stride=2, padding=3, filters=64)
    # (227 + 6 - 7) // 2 + 1 = 114; pools: 56, then 27; pool5: 13
    assert result.row("conv1").output_shape == (114, 114, 64)
    assert result.row("conv1").params == 7 * 7 * 3 * 64 + 64
    assert result.row("conv2").params == 5 * 5 * 64 * 256 + 256
    assert result.row("pool5").output_shape == (13, 13, 256)
    assert result.row("fc6").params == 13 * 13 * 256 * 4096 + 4096
    assert result.conv1.kernel == 7 and result.conv1.padding == 3


def test_224_inputs_drop_a_row_and_shrink_fc6():
    result = widgets.explore_conv1("classic", image_size=224)
    assert result.fits
    assert result.row("conv1").output_shape == (54, 54, 96)
    assert result.row("pool5").output_shape == (5, 5, 256)
    assert "last 1 row(s)" in result.message


def test_too_large_stride_says_where_and_what_to_do():
    result = widgets.explore_conv1("classic", stride=16)
    assert not result.fits
    assert result.rows == ()
    assert result.totals["params"] == 0
    assert "pool5" in result.message and "at least 235×235" in result.message
    assert result.text == result.message
    with pytest.raises(KeyError, match="does not fit"):
        result.row("fc6")


def test_resizing_preset_suggests_resize_to():
    result = widgets.explore_conv1("fashion_mnist", stride=16)
    assert not result.fits and "resize_to" in result.message
    ok = widgets.explore_conv1("fashion_mnist")
    assert ok.image_size == 227 and ok.row("conv1").output_shape == (55, 55, 96)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kernel": 0}, "kernel must be a positive integer"),
    ({"stride": 2.5}, "stride must be a positive integer"),
    ({"padding": -1}, "padding must be a non-negative integer"),
    ({"filters": True}, "filters must be a positive integer"),
])
def test_bad_values_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.explore_conv1("classic", **kwargs)


def test_sliders_update_the_table():
    pytest.importorskip("ipywidgets")
    box = widgets.conv1_explorer("classic")
    title, kernel, stride, padding, filters, output = box.children
    assert [kernel.value, stride.value, padding.value, filters.value] == [11, 4, 0, 96]
    assert "55×55×96" in output.value and "62,378,344" in output.value
    stride.value = 16
    assert "no longer fits" in output.value and "pool5" in output.value
    stride.value = 2
    padding.value = 3
    kernel.value = 7
    assert "114×114×96" in output.value
