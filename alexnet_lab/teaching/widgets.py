"""Interactive explorers for the notebooks, and the pure functions behind them.

:func:`conv1_explorer` shows sliders for AlexNet's first convolution (kernel, stride,
padding, filters) and, under them, the layer table of the whole network, recomputed with
:mod:`alexnet_lab.core.architecture` whenever a slider moves. All the arithmetic is in
:func:`explore_conv1`, a plain function that returns the same table as data, so it can be
tested and called without a display::

    from alexnet_lab.teaching import widgets
    result = widgets.explore_conv1(kernel=7, stride=2)
    print(result.text)
    widgets.conv1_explorer()          # in a notebook: the sliders

Importing this module imports neither ipywidgets nor a deep learning framework.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, replace

from alexnet_lab.core import architecture as arch

__all__ = ["Conv1Exploration", "explore_conv1", "conv1_explorer"]


@dataclass(frozen=True)
class Conv1Exploration:
    """What AlexNet looks like with a changed conv1.

    Attributes:
        conv1: the (changed) first convolution record.
        image_size: the height and width of what conv1 sees (after the model's own resizing, if any).
        fits: ``False`` when some layer's output would be smaller than 1×1.
        rows: the layer table (empty when the network does not fit).
        message: one or two sentences for the student: the sizes, or why it does not fit and what to change.
        text: the table as text (:func:`alexnet_lab.core.architecture.format_table`), or the message.
    """

    conv1: arch.Conv
    image_size: int
    fits: bool
    rows: tuple[arch.LayerRow, ...]
    message: str

    @property
    def text(self) -> str:
        if not self.fits:
            return self.message
        return self.message + "\n\n" + arch.format_table(list(self.rows))

    @property
    def totals(self) -> dict[str, int]:
        """Parameters, MACs, activations and neurons of the whole network (zeros when it does not fit)."""
        if not self.fits:
            return {"params": 0, "macs": 0, "activations": 0, "neurons": 0}
        return arch.totals(list(self.rows))

    def row(self, name: str) -> arch.LayerRow:
        """The row of the layer called ``name`` (e.g. ``"conv1"``, ``"fc6"``)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"No layer {name!r} in this table" + ("" if self.fits else " (the network does not fit)")
                       + f"; layers: {[r.name for r in self.rows]}.")


def _too_small(input_shape, layers) -> str | None:
    """The first layer whose output would be smaller than 1×1, described for a student, or None."""
    size = input_shape[0]
    for layer in layers:
        if isinstance(layer, arch.Resize):
            size = layer.size
        elif isinstance(layer, arch.AdaptiveAvgPool):
            size = layer.output
        elif isinstance(layer, (arch.Conv, arch.MaxPool, arch.AvgPool)):
            k = layer.kernel if isinstance(layer, arch.Conv) else layer.size
            pad = layer.padding if isinstance(layer, arch.Conv) else 0
            out = arch.conv_output_size(size, k, layer.stride, pad)
            if out < 1:
                return (f"{layer.name} gets a {size}×{size} input, smaller than its {k}×{k} window"
                        + (f" with padding {pad}" if pad else "") + f": (n + 2p - k) / s + 1 = "
                        f"({size} + {2 * pad} - {k}) // {layer.stride} + 1 = {out}")
            size = out
    return None


def explore_conv1(
    preset: str = "classic",
    *,
    kernel: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
    filters: int | None = None,
    image_size: int | None = None,
) -> Conv1Exploration:
    """AlexNet's layer table with conv1 changed; arguments left ``None`` keep the preset's values.

    Never raises for sizes that do not fit: the result says ``fits=False`` and its message
    names the layer where the feature map vanishes and what to change. Values that are not
    positive integers (padding: non-negative) raise a ``ValueError``.
    """
    with warnings.catch_warnings():  # the default preset's own sizes are checked in architecture
        warnings.simplefilter("ignore", arch.ImageSizeWarning)
        input_shape, layers = arch.describe_alexnet(preset, image_size=image_size)
    old = layers[0] if isinstance(layers[0], arch.Conv) else layers[1]  # after a Resize layer, if any
    changes = {"kernel": kernel, "stride": stride, "filters": filters}
    for name, value in changes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"conv1 {name} must be a positive integer, got {value!r}.")
    if padding is not None and (isinstance(padding, bool) or not isinstance(padding, int) or padding < 0):
        raise ValueError(f"conv1 padding must be a non-negative integer (pixels on each side), got {padding!r}.")
    changes["padding"] = padding
    conv1 = replace(old, **{k: v for k, v in changes.items() if v is not None})
    layers = [conv1 if layer is old else layer for layer in layers]
    resized = isinstance(layers[0], arch.Resize)
    size = layers[0].size if resized else input_shape[0]  # what conv1 sees

    problem = _too_small(input_shape, layers)
    if problem is not None:
        message = f"The network no longer fits: {problem}. Make the stride or kernel of conv1 smaller or add padding"
        if resized:
            message += f", or resize the images to more than {size}×{size} inside the model (resize_to=...)."
        else:
            minimum = arch.min_image_size(input_shape[2], layers)
            message += f", or feed images of at least {minimum}×{minimum} (these are {size}×{size})."
        return Conv1Exploration(conv1, size, False, (), message)

    rows = tuple(arch.compute_rows(input_shape, layers))
    first = next(r for r in rows if r.name == "conv1")
    fc6 = next(r for r in rows if r.name == "fc6")
    t = arch.totals(list(rows))
    message = (f"conv1: {conv1.filters} filters of {conv1.kernel}×{conv1.kernel}, stride {conv1.stride}, padding "
               f"{conv1.padding} on {size}×{size} images -> {first.output_shape[0]}×{first.output_shape[1]}×"
               f"{first.output_shape[2]}. Whole network: {t['params']:,} parameters ({fc6.params:,} in fc6), "
               f"{t['macs'] / 1e9:.2f} GMACs per image.")
    dropped = (size + 2 * conv1.padding - conv1.kernel) % conv1.stride
    if dropped:
        message += (f" Note: n + 2p - k = {size + 2 * conv1.padding - conv1.kernel} is not a multiple of the "
                    f"stride {conv1.stride}, so conv1 never looks at the last {dropped} row(s) and column(s).")
    return Conv1Exploration(conv1, size, True, rows, message)


def _html(result: Conv1Exploration) -> str:
    """The exploration as HTML: the message, then the table in a monospace block."""
    colour = "#1b5e20" if result.fits else "#b71c1c"
    body = f"<p style='color:{colour}'>{html.escape(result.message)}</p>"
    if result.fits:
        table = html.escape(arch.format_table(list(result.rows)))
        body += f"<pre style='font-size:11px; line-height:1.25'>{table}</pre>"
    return body


def conv1_explorer(preset: str = "classic"):
    """Sliders for conv1's kernel, stride, padding and filters, above AlexNet's recomputed layer table.

    Returns an ``ipywidgets.VBox``; a notebook displays it when it is the cell's last value.
    Without a live kernel (a notebook viewed on GitHub, or run by nbval) it shows nothing
    interactive, so notebooks also print ``explore_conv1(...).text``.
    """
    import ipywidgets as w

    start = explore_conv1(preset)
    c = start.conv1
    style = {"description_width": "70px"}
    layout = w.Layout(width="420px")
    sliders = {
        "kernel": w.IntSlider(c.kernel, min=1, max=21, description="kernel", style=style, layout=layout),
        "stride": w.IntSlider(c.stride, min=1, max=16, description="stride", style=style, layout=layout),
        "padding": w.IntSlider(c.padding, min=0, max=10, description="padding", style=style, layout=layout),
        "filters": w.IntSlider(c.filters, min=8, max=256, step=8, description="filters", style=style,
                               layout=layout),
    }
    output = w.HTML(_html(start))

    def update(_change=None):
        try:
            result = explore_conv1(preset, **{name: s.value for name, s in sliders.items()})
        except ValueError as err:  # cannot happen with the sliders' ranges, but say so if it does
            output.value = f"<p style='color:#b71c1c'>{html.escape(str(err))}</p>"
            return
        output.value = _html(result)

    for s in sliders.values():
        s.observe(update, names="value")
    title = w.HTML(f"<b>AlexNet ({html.escape(preset)}): change conv1 and watch every layer after it</b>")
    return w.VBox([title, *sliders.values(), output])
