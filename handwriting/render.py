"""Drawing handwriting: matplotlib plots, fast cairo rasters, SVG (static and animated), GIF and notebook
animations.

Every function takes the project's one representation — an ``(N, 3)`` offsets array ``(dx, dy,
end_of_stroke)`` with y growing upwards (see :mod:`handwriting.strokes`) — or a :class:`~handwriting.strokes.Sample`
(whose ``text`` becomes the title), or a *list* of those, which is read as lines of text and laid out top to
bottom with :func:`handwriting.layout.layout_lines`.

Sizes
-----
Raster and SVG output is measured in pixels, set by one of ``scale`` (pixels per data unit), ``height`` or
``width`` (the whole image, padding included; both together fit the writing inside that box, centred).  With
none of them the writing is scaled so that one line of it is ``line_px`` pixels tall.  ``padding`` is the
margin, in pixels, between the stroke centre-lines and the image edge.

Which to use
------------
- :func:`plot`, :func:`plot_grid`: figures in notebooks (attention colours, per-stroke colours, points).
- :func:`render_image`, :func:`save_png`: fast rasters with cairo (no matplotlib; thousands of words a second),
  e.g. for a recognizer or for thumbnails.
- :func:`to_svg`, :func:`save_svg`: vector output; ``animate=True`` draws stroke by stroke in a browser.
- :func:`save_gif`: an animated GIF drawn point by point (cairo frames, pillow writer); :func:`animate`,
  :func:`to_html_animation`: a matplotlib animation and its HTML for notebooks (in :mod:`handwriting.animation`).

G-code for pen plotters, and :func:`handwriting.export.save` (choose the format by file suffix), live in
:mod:`handwriting.export`.
"""

from __future__ import annotations

import html
import importlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._io import atomic_write
from .errors import HandwritingError, OutputError
from .layout import layout_lines
from .strokes import Sample, check_offsets, stroke_slices, to_absolute

__all__ = [
    "OutputError", "stack_lines", "plot", "plot_grid", "render_image", "png_bytes", "save_png", "to_svg", "save_svg",
    "animate", "gif_bytes", "save_gif", "to_html_animation",  # noqa: F822 (from handwriting.animation: __getattr__)
]


# ----------------------------------------------------------------------------------------------------------
# input handling


@dataclass
class _Ink:
    """Validated input: offsets, absolute points, the text (if any) and the per-line height."""

    offsets: np.ndarray  # (N, 3) float32
    points: np.ndarray  # (N, 3) float64 absolute (x, y, eos)
    text: str
    n_lines: int
    line_height: float  # median ink height of one line, in data units (> 0)

    @property
    def slices(self) -> list[slice]:
        return stroke_slices(self.offsets)

    @property
    def strokes(self) -> list[np.ndarray]:
        return [self.points[s, :2] for s in self.slices]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        p = self.points
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())


def _is_lines(data: Any) -> bool:
    """A list/tuple whose items are samples or 2-D arrays (not a nested list of rows)."""
    if not isinstance(data, (list, tuple)) or len(data) == 0:
        return False

    def is_2d(d: Any) -> bool:
        try:
            return np.ndim(d) == 2
        except ValueError:  # a ragged nested list: not a single line either
            return False

    return all(isinstance(d, Sample) or is_2d(d) for d in data)


def _one(data: Any, where: str) -> tuple[np.ndarray, str]:
    if isinstance(data, Sample):
        return check_offsets(data.offsets, where), data.text or ""
    return check_offsets(data, where), ""


def _height(offsets: np.ndarray) -> float:
    y = np.cumsum(offsets[:, 1], dtype=np.float64)
    return float(np.ptp(y))


def _ink(data: Any, where: str = "render") -> _Ink:
    """Accept offsets, a Sample, or a list of them (lines of text); validate and precompute."""
    if _is_lines(data):
        parts = [_one(d, f"{where}: line {i}") for i, d in enumerate(data)]
        offsets = layout_lines([p[0] for p in parts])
        text = "\n".join(p[1] for p in parts if p[1])
        heights = [h for h in (_height(p[0]) for p in parts) if h > 0]
        n_lines = len(parts)
    else:
        if isinstance(data, (list, tuple)) and len(data) == 0:
            raise HandwritingError(f"{where}: got an empty list; pass offsets, a Sample, or a non-empty list of lines")
        offsets, text = _one(data, where)
        heights = [h for h in [_height(offsets)] if h > 0]
        n_lines = 1
    points = to_absolute(offsets)
    if heights:
        line_height = float(np.median(heights))
    else:  # a flat line or a single point: fall back to the width, then to 1
        line_height = float(np.ptp(points[:, 0])) or 1.0
    return _Ink(offsets, points, text, n_lines, line_height)


#: the old name of :func:`handwriting.layout.layout_lines`, which lays out the lists of lines drawn here.
stack_lines = layout_lines


# ----------------------------------------------------------------------------------------------------------
# geometry: data units -> pixels (y flipped: row 0 at the top)


@dataclass
class _Frame:
    width: int
    height: int
    scale: float  # pixels per data unit
    x0: float  # pixel x of data x = 0 (pixel x = x0 + x * scale)
    y0: float  # pixel y of data y = 0 (pixel y = y0 - y * scale: rows grow downwards)

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        out = np.empty_like(xy, dtype=np.float64)
        out[:, 0] = self.x0 + xy[:, 0] * self.scale
        out[:, 1] = self.y0 - xy[:, 1] * self.scale
        return out


def _frame(
    ink: _Ink,
    *,
    scale: float | None,
    width: float | None,
    height: float | None,
    padding: float,
    line_px: float,
    integer: bool = True,
    where: str = "render",
) -> _Frame:
    """Pick the scale and canvas size; the ink's bounding box is centred in the canvas."""
    for name, v in (("scale", scale), ("width", width), ("height", height)):
        if v is not None and not (isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0):
            raise HandwritingError(f"{where}: {name} must be a positive number, got {v!r}")
    if padding < 0:
        raise HandwritingError(f"{where}: padding must be >= 0, got {padding!r}")
    if scale is not None and (width is not None or height is not None):
        raise HandwritingError(f"{where}: give either scale or width/height, not both")
    xmin, ymin, xmax, ymax = ink.bounds
    span_x, span_y = xmax - xmin, ymax - ymin
    fits = []
    if width is not None:
        if width <= 2 * padding:
            raise HandwritingError(
                f"{where}: width={width} leaves no room inside padding={padding}; lower the padding"
            )
        if span_x > 0:
            fits.append((width - 2 * padding) / span_x)
    if height is not None:
        if height <= 2 * padding:
            raise HandwritingError(
                f"{where}: height={height} leaves no room inside padding={padding}; lower the padding"
            )
        if span_y > 0:
            fits.append((height - 2 * padding) / span_y)
    if scale is None:
        if fits:
            scale = min(fits)
        else:  # no size given (or a degenerate extent): one line of writing is line_px tall
            scale = line_px / ink.line_height
    w = width if width is not None else span_x * scale + 2 * padding
    h = height if height is not None else span_y * scale + 2 * padding
    if integer:
        w, h = max(1, int(math.ceil(w - 1e-9))), max(1, int(math.ceil(h - 1e-9)))
    x0 = (w - span_x * scale) / 2 - xmin * scale
    y0 = (h - span_y * scale) / 2 + ymax * scale
    return _Frame(w, h, float(scale), x0, y0)


# ----------------------------------------------------------------------------------------------------------
# colours (no matplotlib needed for the common cases)

_NAMED = {
    "black": (0, 0, 0),
    "white": (1, 1, 1),
    "red": (1, 0, 0),
    "green": (0, 0.5, 0),
    "blue": (0, 0, 1),
    "gray": (0.5, 0.5, 0.5),
    "grey": (0.5, 0.5, 0.5),
    "navy": (0, 0, 0.5),
}


def _rgba(color: Any, where: str = "color") -> tuple[float, float, float, float]:
    """A colour as (r, g, b, a) floats in [0, 1]: names, '#rgb', '#rrggbb', '#rrggbbaa', float or 0-255 tuples,
    or anything matplotlib understands.  ``None`` / 'none' / 'transparent' is fully transparent."""
    if color is None or (isinstance(color, str) and color.lower() in ("none", "transparent")):
        return (0.0, 0.0, 0.0, 0.0)
    if isinstance(color, str):
        c = color.strip().lower()
        if c in _NAMED:
            return (*map(float, _NAMED[c]), 1.0)
        if c.startswith("#") and len(c) in (4, 7, 9):
            h = c[1:]
            if len(h) == 3:
                h = "".join(ch * 2 for ch in h)
            try:
                vals = [int(h[i : i + 2], 16) / 255 for i in range(0, len(h), 2)]
                return (vals[0], vals[1], vals[2], vals[3] if len(vals) == 4 else 1.0)
            except ValueError:
                pass
    elif isinstance(color, (tuple, list, np.ndarray)) and len(color) in (3, 4):
        vals = [float(v) for v in color]
        if any(v > 1 for v in vals):
            vals = [v / 255 for v in vals]
        if all(0 <= v <= 1 for v in vals):
            return (vals[0], vals[1], vals[2], vals[3] if len(vals) == 4 else 1.0)
    try:
        from matplotlib.colors import to_rgba

        return tuple(float(v) for v in to_rgba(color))  # type: ignore[return-value]
    except (ImportError, ValueError) as exc:
        raise HandwritingError(
            f"{where}: cannot read the colour {color!r}; use a name ('black'), '#rrggbb' or an (r, g, b) tuple"
        ) from exc


def _hex(color: Any, where: str) -> tuple[str, float]:
    r, g, b, a = _rgba(color, where)
    return "#%02x%02x%02x" % tuple(int(round(v * 255)) for v in (r, g, b)), a


def _stroke_palette(n: int, stroke_colors: Any) -> list[Any] | None:
    """Per-stroke colours: True → a qualitative cycle, a list → cycled, False/None → None."""
    if stroke_colors is None or stroke_colors is False:
        return None
    if stroke_colors is True:
        cycle = [
            "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
            "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
        ]  # fmt: skip
    else:
        cycle = list(stroke_colors)
        if not cycle:
            return None
    return [cycle[i % len(cycle)] for i in range(n)]


# ----------------------------------------------------------------------------------------------------------
# writing files


def _write(path: str | os.PathLike, data: bytes | str, what: str) -> Path:
    """Write ``data`` atomically; turn OS failures into an :class:`OutputError` naming the path."""
    path = Path(path)
    if path.is_dir():
        ext = {"G-code": ".gcode"}.get(what, "." + what.lower())
        raise OutputError(
            f"cannot write {what} to {path}: it is a directory; give a file path inside it, "
            f"e.g. {path / ('handwriting' + ext)}"
        )
    mode, kw = ("w", {"encoding": "utf-8", "newline": "\n"}) if isinstance(data, str) else ("wb", {})
    try:
        with atomic_write(path, mode, **kw) as f:
            f.write(data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(
            f"cannot write {what} to {path}: {reason}; write somewhere else, or check that {path.parent} is "
            "(or can be created as) a directory you may write to, with free space"
        ) from exc
    return path


# ----------------------------------------------------------------------------------------------------------
# matplotlib


def plot(
    data: Any,
    ax: Any = None,
    *,
    color: Any = None,
    stroke_colors: Any = False,
    point_colors: Any = None,
    cmap: Any = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = False,
    linewidth: float = 1.5,
    title: str | None = None,
    show_points: bool = False,
    point_size: float = 6.0,
    figsize: tuple[float, float] | None = None,
    axis: bool = False,
) -> Any:
    """Plot handwriting with matplotlib and return the axes.

    One ``Line2D`` per stroke (``ax.lines``), or, with ``point_colors``, one ``LineCollection`` per stroke
    (``ax.collections``) whose segments take the colour of the point they lead to.  The aspect is equal, y
    grows upwards, and the axes are hidden unless ``axis=True``.

    data: offsets ``(N, 3)``, a :class:`Sample`, or a list of them (lines, stacked top to bottom).
    color: one colour for all ink (default black).
    stroke_colors: ``True`` for a different colour per stroke, or a list of colours to cycle.
    point_colors: one value per point (``N`` numbers mapped through ``cmap`` — e.g. the index of the attended
        character — or ``(N, 3|4)`` RGB(A) colours); ``vmin``/``vmax`` fix the colour range, ``colorbar`` adds one.
    title: the axes title; by default the sample's text (``""`` for none).
    show_points: also mark every point (a scatter, coloured like the ink).
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    ink = _ink(data, "plot")
    n = len(ink.offsets)
    if ax is None:
        xmin, ymin, xmax, ymax = ink.bounds
        aspect = (xmax - xmin) / max(ymax - ymin, 1e-9)
        if figsize is None:
            h = 2.0 + 0.6 * (ink.n_lines - 1)
            figsize = (float(np.clip(h * aspect, 2.5, 12.0)), h)
        _, ax = plt.subplots(figsize=figsize)
    base = _rgba(color, "plot color") if color is not None else "black"
    palette = _stroke_palette(len(ink.slices), stroke_colors)

    values = rgba = None
    if point_colors is not None:
        pc = np.asarray(point_colors)
        if pc.ndim == 1 and len(pc) == n and np.issubdtype(pc.dtype, np.number):
            values = pc.astype(np.float64)
        elif pc.ndim == 2 and pc.shape[0] == n and pc.shape[1] in (3, 4):
            rgba = pc.astype(np.float64)
            if rgba.max() > 1:
                rgba = rgba / 255.0
        else:
            raise HandwritingError(
                f"plot: point_colors must hold one number per point ({n},) or an RGB(A) colour per point "
                f"({n}, 3|4), got shape {pc.shape}; take it from the same sequence as the offsets"
            )
    if values is not None:
        import matplotlib as mpl

        norm = mpl.colors.Normalize(
            vmin=float(np.nanmin(values)) if vmin is None else vmin,
            vmax=float(np.nanmax(values)) if vmax is None else vmax,
        )
        cmap_obj = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
        rgba = cmap_obj(norm(values))
    else:
        norm = cmap_obj = None

    for k, sl in enumerate(ink.slices):
        xy = ink.points[sl, :2]
        c = palette[k] if palette is not None else base
        if rgba is None:
            single = len(xy) == 1
            ax.plot(
                xy[:, 0], xy[:, 1], color=c, linewidth=linewidth, solid_capstyle="round", solid_joinstyle="round",
                marker="o" if single else None, markersize=linewidth * 1.5,
            )  # fmt: skip
        else:
            idx = np.arange(sl.start, sl.stop)
            if len(xy) == 1:
                segs, cols = np.stack([xy, xy], axis=1), rgba[idx]
            else:
                segs, cols = np.stack([xy[:-1], xy[1:]], axis=1), rgba[idx[1:]]
            lc = LineCollection(segs, colors=cols, linewidths=linewidth, capstyle="round", joinstyle="round")
            ax.add_collection(lc)
    if show_points:
        pc_col = rgba if rgba is not None else (
            [palette[k] for k, sl in enumerate(ink.slices) for _ in range(sl.stop - sl.start)] if palette else base
        )  # fmt: skip
        ax.scatter(ink.points[:, 0], ink.points[:, 1], s=point_size, c=pc_col, zorder=3, linewidths=0)
    if colorbar and values is not None:
        import matplotlib as mpl

        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap_obj)
        ax.figure.colorbar(sm, ax=ax, fraction=0.04, pad=0.02)

    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.margins(0.03)
    if ax.yaxis_inverted():
        ax.invert_yaxis()
    if not axis:
        ax.set_axis_off()
    t = ink.text if title is None else title
    if t:
        ax.set_title(t, fontsize=10)
    return ax


def plot_grid(
    samples: Sequence[Any],
    texts: Sequence[str] | None = None,
    ncols: int = 4,
    *,
    cell_size: tuple[float, float] = (3.0, 1.3),
    figsize: tuple[float, float] | None = None,
    suptitle: str | None = None,
    **plot_kwargs: Any,
) -> Any:
    """A grid of samples (offsets, :class:`Sample` or lists of lines) with their texts as titles; returns the
    figure.  ``texts`` overrides the samples' own texts; other keyword arguments go to :func:`plot`
    (``point_colors`` may then be a list with one entry per sample)."""
    import matplotlib.pyplot as plt

    items = list(samples)
    if not items:
        raise HandwritingError("plot_grid: no samples given; pass a non-empty list")
    if texts is not None and len(texts) != len(items):
        raise HandwritingError(f"plot_grid: got {len(texts)} texts for {len(items)} samples; pass one text per sample")
    if ncols < 1:
        raise HandwritingError(f"plot_grid: ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(items))
    nrows = int(math.ceil(len(items) / ncols))
    if figsize is None:
        figsize = (cell_size[0] * ncols, cell_size[1] * nrows + (0.4 if suptitle else 0.0))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    per_sample_pc = plot_kwargs.pop("point_colors", None)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(items):
            ax.set_axis_off()
            continue
        kw = dict(plot_kwargs)
        if per_sample_pc is not None:
            kw["point_colors"] = per_sample_pc[i]
        title = texts[i] if texts is not None else None
        plot(items[i], ax=ax, title=title, **kw)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------
# cairo rasters


def _cairo():
    try:
        import cairocffi as cairo
    except (ImportError, OSError) as exc:  # OSError: the cairo C library itself is missing
        raise HandwritingError(
            f"raster output needs cairocffi and the cairo library ({exc}); `pip install cairocffi` and install "
            "libcairo2 (apt) / cairo (conda-forge, brew)"
        ) from exc
    return cairo


def _path_data(strokes_px: Sequence[np.ndarray]) -> np.ndarray:
    """The strokes as a raw ``cairo_path_data_t`` array (16-byte elements: a (type, length) header then a
    point, per move/line), so a whole word is handed to cairo in one call instead of one call per point."""
    pts = [s if len(s) > 1 else np.vstack([s, s]) for s in strokes_px if len(s)]  # dots: zero-length segments
    n = sum(len(s) for s in pts)
    buf = np.zeros((2 * n, 2), dtype=np.float64)
    buf[1::2] = np.vstack(pts)
    hdr = buf.view(np.int32).reshape(2 * n, 4)[0::2]
    hdr[:, 0] = 1  # CAIRO_PATH_LINE_TO
    hdr[:, 1] = 2  # elements in this record (header + point)
    starts = np.cumsum([0] + [len(s) for s in pts[:-1]])
    hdr[starts, 0] = 0  # CAIRO_PATH_MOVE_TO
    return buf


def _append_fast(cairo: Any, ctx: Any, strokes_px: Sequence[np.ndarray]) -> bool:
    """Append the path through cairocffi's C bindings (``cairocffi.ffi``/``cairocffi.cairo``, ``_pointer``);
    False if they are not available, and the caller falls back to one Python call per point."""
    try:
        ffi, lib = cairo.ffi, cairo.cairo
        data = _path_data(strokes_px)
        path = ffi.new("cairo_path_t *")
        path.status = 0
        path.data = ffi.cast("cairo_path_data_t *", ffi.from_buffer(data))
        path.num_data = len(data)
        lib.cairo_append_path(ctx._pointer, path)
        return lib.cairo_status(ctx._pointer) == 0
    except (AttributeError, TypeError):
        return False


def _draw_paths(ctx: Any, strokes_px: Sequence[np.ndarray], line_width: float, colors: Sequence[tuple] | None) -> None:
    cairo = _cairo()
    ctx.set_line_width(line_width)
    ctx.set_line_cap(cairo.LINE_CAP_ROUND)
    ctx.set_line_join(cairo.LINE_JOIN_ROUND)
    strokes_px = [s for s in strokes_px if len(s)]
    if not strokes_px:
        return
    if colors is None and _append_fast(cairo, ctx, strokes_px):
        ctx.stroke()
        return
    for k, s in enumerate(strokes_px):
        if colors is not None and _append_fast(cairo, ctx, [s]):
            ctx.set_source_rgba(*colors[k])
            ctx.stroke()
            continue
        pts = s.tolist()
        ctx.move_to(*pts[0])
        for x, y in pts[1:] if len(pts) > 1 else pts:  # a dot: a zero-length segment with round caps
            ctx.line_to(x, y)
        if colors is not None:
            ctx.set_source_rgba(*colors[k])
            ctx.stroke()
    if colors is None:
        ctx.stroke()


def _raster_setup(
    ink: _Ink, *, scale, width, height, padding, line_width, line_px, where
) -> tuple[_Frame, list[np.ndarray]]:
    if not (line_width > 0):
        raise HandwritingError(f"{where}: line_width must be > 0, got {line_width!r}")
    pad = (line_width / 2 + 2) if padding is None else float(padding)
    fr = _frame(ink, scale=scale, width=width, height=height, padding=pad, line_px=line_px, where=where)
    if fr.width * fr.height > 100_000_000:
        raise HandwritingError(
            f"{where}: the image would be {fr.width}x{fr.height} pixels; lower scale or set height/width"
        )
    px = fr.to_px(ink.points[:, :2])
    return fr, [px[s] for s in ink.slices]


def _argb_surface(cairo, fr, strokes_px, line_width, color, background, antialias, stroke_colors):
    surf = cairo.ImageSurface(cairo.FORMAT_ARGB32, fr.width, fr.height)
    ctx = cairo.Context(surf)
    ctx.set_antialias(cairo.ANTIALIAS_DEFAULT if antialias else cairo.ANTIALIAS_NONE)
    bg = _rgba(background, "background")
    if bg[3] > 0:
        ctx.set_source_rgba(*bg)
        ctx.paint()
    palette = _stroke_palette(len(strokes_px), stroke_colors)
    if palette is None:
        ctx.set_source_rgba(*_rgba(color, "color"))
        _draw_paths(ctx, strokes_px, line_width, None)
    else:
        _draw_paths(ctx, strokes_px, line_width, [_rgba(c, "stroke_colors") for c in palette])
    surf.flush()
    return surf


def _a8_alpha(cairo, fr, strokes_px, line_width, antialias) -> np.ndarray:
    surf = cairo.ImageSurface(cairo.FORMAT_A8, fr.width, fr.height)
    ctx = cairo.Context(surf)
    ctx.set_antialias(cairo.ANTIALIAS_DEFAULT if antialias else cairo.ANTIALIAS_NONE)
    _draw_paths(ctx, strokes_px, line_width, None)
    surf.flush()
    stride = surf.get_stride()
    buf = np.frombuffer(surf.get_data(), dtype=np.uint8).reshape(fr.height, stride)
    return buf[:, : fr.width].copy()


def _argb_to_rgba(surf, fr) -> np.ndarray:
    """cairo's premultiplied native-endian ARGB32 → straight RGBA uint8 (H, W, 4)."""
    stride = surf.get_stride()
    raw = np.frombuffer(surf.get_data(), dtype=np.uint32).reshape(fr.height, stride // 4)[:, : fr.width]
    a = (raw >> 24) & 0xFF
    rgb = np.stack([(raw >> 16) & 0xFF, (raw >> 8) & 0xFF, raw & 0xFF], axis=-1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = np.where(a[..., None] > 0, rgb * 255.0 / a[..., None], 0.0)
    out = np.empty((fr.height, fr.width, 4), dtype=np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    out[..., 3] = a.astype(np.uint8)
    return out


def render_image(
    data: Any,
    *,
    height: int | None = None,
    width: int | None = None,
    scale: float | None = None,
    line_width: float = 2.0,
    padding: float | None = None,
    background: Any = "white",
    color: Any = "black",
    antialias: bool = True,
    mode: str = "L",
    stroke_colors: Any = False,
    line_px: float = 48.0,
) -> np.ndarray:
    """Rasterise handwriting with cairo (fast: no matplotlib) and return a numpy image.

    mode: ``"L"`` → ``(H, W)`` uint8 grey levels (ink dark on a light background by default);
        ``"RGBA"`` → ``(H, W, 4)`` uint8, straight (not premultiplied) alpha; ``background=None`` is transparent.
    height / width / scale: see the module docstring (default: one line of writing is ``line_px`` tall).
    line_width: pen width in pixels.  padding: margin in pixels (default ``line_width / 2 + 2``).
    """
    cairo = _cairo()
    ink = _ink(data, "render_image")
    fr, strokes_px = _raster_setup(
        ink, scale=scale, width=width, height=height, padding=padding, line_width=line_width, line_px=line_px,
        where="render_image",
    )  # fmt: skip
    if mode == "L":
        if stroke_colors:
            raise HandwritingError("render_image: stroke_colors needs mode='RGBA'")
        if background is None:
            raise HandwritingError("render_image: a transparent background needs mode='RGBA'")
        alpha = _a8_alpha(cairo, fr, strokes_px, line_width, antialias)

        def grey(c, where):
            r, g, b, a = _rgba(c, where)
            return 0.299 * r + 0.587 * g + 0.114 * b, a

        bg, _ = grey(background, "background")
        ink_grey, ink_alpha = grey(color, "color")
        a = alpha.astype(np.float32) * (ink_alpha / 255.0)
        out = (bg * 255.0) * (1.0 - a) + (ink_grey * 255.0) * a
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if mode == "RGBA":
        surf = _argb_surface(cairo, fr, strokes_px, line_width, color, background, antialias, stroke_colors)
        return _argb_to_rgba(surf, fr)
    raise HandwritingError(f"render_image: mode must be 'L' or 'RGBA', got {mode!r}")


def png_bytes(
    data: Any,
    *,
    height: int | None = None,
    width: int | None = None,
    scale: float | None = None,
    line_width: float = 2.0,
    padding: float | None = None,
    background: Any = "white",
    color: Any = "black",
    antialias: bool = True,
    stroke_colors: Any = False,
    line_px: float = 48.0,
) -> bytes:
    """The PNG file content (cairo's PNG writer) for :func:`save_png`'s options."""
    cairo = _cairo()
    ink = _ink(data, "png")
    fr, strokes_px = _raster_setup(
        ink, scale=scale, width=width, height=height, padding=padding, line_width=line_width, line_px=line_px,
        where="png",
    )  # fmt: skip
    surf = _argb_surface(cairo, fr, strokes_px, line_width, color, background, antialias, stroke_colors)
    buf = io.BytesIO()
    surf.write_to_png(buf)
    return buf.getvalue()


def save_png(data: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Render with cairo and write a PNG atomically (nothing half-written on failure); returns the path.

    Options as for :func:`render_image` (``height``, ``width``, ``scale``, ``line_width``, ``padding``,
    ``background`` (``None``: transparent), ``color``, ``antialias``, ``stroke_colors``)."""
    return _write(path, png_bytes(data, **options), "PNG")


# ----------------------------------------------------------------------------------------------------------
# SVG


def _fmt(v: float, decimals: int) -> str:
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def to_svg(
    data: Any,
    *,
    stroke_width: float = 2.0,
    color: Any = "black",
    background: Any = None,
    padding: float = 10.0,
    scale: float | None = None,
    height: float | None = None,
    width: float | None = None,
    stroke_colors: Any = False,
    animate: bool = False,
    duration: float | None = None,
    pen_up_pause: float = 0.08,
    decimals: int = 2,
    title: str | None = None,
    line_px: float = 80.0,
    xml_declaration: bool = True,
) -> str:
    """A standalone SVG document: one ``<path d="M x y L x y ...">`` per stroke, round caps and joins, the
    view box fitted to the ink (plus ``padding`` pixels), y flipped for SVG's downward y.

    animate: draw stroke by stroke in a browser (CSS ``stroke-dasharray``/``stroke-dashoffset``); each stroke
        takes a time proportional to its length, with ``pen_up_pause`` seconds between strokes; ``duration`` is
        the total time in seconds (default: about 600 pixels of ink per second, at least 1 s of drawing).  It plays
        once when the SVG is shown; reload the page (or re-insert the element) to replay.
    title: a ``<title>`` element (default: the sample's text).
    """
    ink = _ink(data, "to_svg")
    if not stroke_width > 0:
        raise HandwritingError(f"to_svg: stroke_width must be > 0, got {stroke_width!r}")
    fr = _frame(
        ink, scale=scale, width=width, height=height, padding=padding, line_px=line_px, integer=False, where="to_svg"
    )
    px = fr.to_px(ink.points[:, :2])
    strokes_px = [px[s] for s in ink.slices]
    W, H = _fmt(fr.width, decimals), _fmt(fr.height, decimals)
    stroke_hex, stroke_alpha = _hex(color, "to_svg color")
    palette = _stroke_palette(len(strokes_px), stroke_colors)

    lengths = [float(np.linalg.norm(np.diff(s, axis=0), axis=1).sum()) if len(s) > 1 else 0.0 for s in strokes_px]
    lines = []
    if xml_declaration:
        lines.append('<?xml version="1.0" encoding="UTF-8"?>')
    lines.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{W}" height="{H}" viewBox="0 0 {W} {H}">'
    )
    t = ink.text if title is None else title
    if t:
        lines.append(f"<title>{html.escape(t, quote=False)}</title>")
    if animate:
        if duration is not None and not duration > 0:
            raise HandwritingError(f"to_svg: duration must be > 0 seconds, got {duration!r}")
        if pen_up_pause < 0:
            raise HandwritingError(f"to_svg: pen_up_pause must be >= 0 seconds, got {pen_up_pause!r}")
        # a timeline at about 600 pixels of ink per second (at least 1 s of drawing), then stretched to `duration`
        speed = max(sum(lengths), 1e-9) / max(1.0, sum(lengths) / 600.0)
        times, t0 = [], 0.0
        for k, L in enumerate(lengths):
            d = L / speed if L > 0 else 0.05
            times.append((t0, d))
            t0 += d + (pen_up_pause if k < len(lengths) - 1 else 0.0)
        if duration is not None:
            times = [(a * duration / t0, d * duration / t0) for a, d in times]
        lines.append(
            "<style>"
            ".hw-stroke{opacity:0;animation-name:hw-draw;animation-timing-function:linear;"
            "animation-fill-mode:forwards}"
            "@keyframes hw-draw{from{opacity:1}to{stroke-dashoffset:0;opacity:1}}"
            "</style>"
        )
    if background is not None:
        bg_hex, bg_alpha = _hex(background, "to_svg background")
        op = "" if bg_alpha >= 1 else f' fill-opacity="{_fmt(bg_alpha, 3)}"'
        lines.append(f'<rect x="0" y="0" width="{W}" height="{H}" fill="{bg_hex}"{op}/>')
    op = "" if stroke_alpha >= 1 else f' stroke-opacity="{_fmt(stroke_alpha, 3)}"'
    lines.append(
        f'<g fill="none" stroke="{stroke_hex}"{op} stroke-width="{_fmt(stroke_width, 3)}" '
        'stroke-linecap="round" stroke-linejoin="round">'
    )
    for k, s in enumerate(strokes_px):
        coords = [f"{_fmt(x, decimals)} {_fmt(y, decimals)}" for x, y in s]
        if len(coords) == 1:
            coords.append(coords[0])  # zero-length segment: a dot with round caps
        d = "M " + coords[0] + " L " + " ".join(coords[1:])
        attrs = f'd="{d}"'
        if palette is not None:
            attrs += f' stroke="{_hex(palette[k], "to_svg stroke_colors")[0]}"'
        if animate:
            start, dur = times[k]
            style = f"animation-duration:{dur:.3f}s;animation-delay:{start:.3f}s"
            if lengths[k] > 0:
                L = _fmt(lengths[k] + 1.0, 2)  # a little longer than the path: no stray cap at the start
                style = f"stroke-dasharray:{L} {L};stroke-dashoffset:{L};" + style
            attrs += f' class="hw-stroke" style="{style}"'
        lines.append(f"<path {attrs}/>")
    lines.append("</g>")
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def save_svg(data: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Write :func:`to_svg` output atomically; returns the path."""
    return _write(path, to_svg(data, **options), "SVG")


# ----------------------------------------------------------------------------------------------------------
# animation: in handwriting.animation, which imports this module; re-exported on first use, by name (no cycle)


def __getattr__(name: str) -> Any:
    if name not in ("gif_bytes", "save_gif", "animate", "to_html_animation"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__package__}.animation"), name)
