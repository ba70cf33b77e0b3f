"""Handwriting drawn point by point: animated GIFs (:func:`gif_bytes`, :func:`save_gif`: cairo frames written
with pillow) and matplotlib animations for notebooks (:func:`animate`, :func:`to_html_animation`).

Inputs, sizes and styles as in :mod:`handwriting.render` (offsets, a :class:`~handwriting.strokes.Sample` or a
list of lines), whose rasteriser this module reuses; ``render`` re-exports the four public names (lazily:
this module imports ``render``, not the other way round).
"""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import HandwritingError
from .render import _a8_alpha, _cairo, _ink, _raster_setup, _rgba, _write, to_svg

__all__ = ["gif_bytes", "save_gif", "animate", "to_html_animation"]


#: the most pixels an animated GIF's frames may hold together (one byte each once quantised)
GIF_MAX_PIXELS = 400_000_000


def _frame_counts(n_points: int, fps: float, speed: float, max_frames: int, where: str) -> tuple[np.ndarray, float]:
    """How many points are visible in each frame, and the frame interval in seconds.

    ``speed`` is points drawn per second; when that would need more than ``max_frames`` frames, the frames
    are spread out (several points per frame, longer frame interval) keeping the total time."""
    if not (fps > 0 and speed > 0):
        raise HandwritingError(f"{where}: fps and speed must be > 0, got fps={fps!r}, speed={speed!r}")
    if max_frames < 1:
        raise HandwritingError(f"{where}: max_frames must be >= 1, got {max_frames!r}")
    seconds = n_points / speed
    frames = int(min(max_frames, max(1, math.ceil(seconds * fps))))
    counts = np.unique(np.ceil(np.linspace(0, n_points, frames + 1)[1:]).astype(int))
    counts = np.clip(counts, 1, n_points)
    interval = seconds / len(counts)
    return counts, interval


def _prefix(strokes: Sequence[np.ndarray], slices: Sequence[slice], n: int) -> list[np.ndarray]:
    """The strokes as far as the first ``n`` points."""
    out = []
    for s, sl in zip(strokes, slices):
        if sl.start >= n:
            break
        out.append(s[: n - sl.start])
    return out


def gif_bytes(
    data: Any,
    *,
    fps: float = 20.0,
    speed: float = 120.0,
    max_frames: int = 100,
    hold: float = 1.5,
    loop: int | None = 0,
    height: int | None = None,
    width: int | None = None,
    scale: float | None = None,
    line_width: float = 2.5,
    padding: float | None = None,
    background: Any = "white",
    color: Any = "black",
    line_px: float = 64.0,
) -> bytes:
    """The content of an animated GIF (see :func:`save_gif`)."""
    from PIL import Image

    cairo = _cairo()
    ink = _ink(data, "save_gif")
    if background is None:
        raise HandwritingError("save_gif: GIF frames need a background colour (transparent is not supported)")
    fr, strokes_px = _raster_setup(
        ink, scale=scale, width=width, height=height, padding=padding, line_width=line_width, line_px=line_px,
        where="save_gif",
    )  # fmt: skip
    counts, interval = _frame_counts(len(ink.points), fps, speed, max_frames, "save_gif")
    if len(counts) * fr.width * fr.height > GIF_MAX_PIXELS:  # the frames are all held until the file is written
        raise HandwritingError(
            f"save_gif: {len(counts)} frames of {fr.width}x{fr.height} pixels would hold "
            f"{len(counts) * fr.width * fr.height / 1e6:.0f} M pixels (at most {GIF_MAX_PIXELS / 1e6:.0f} M); "
            "lower the width (--width) or scale, or max_frames"
        )
    bg = _rgba(background, "background")
    fg = _rgba(color, "color")
    bg_rgb = np.array(bg[:3], np.float32) * 255
    fg_rgb = np.array(fg[:3], np.float32) * 255
    slices = ink.slices
    frames = []
    for n in counts:
        alpha = _a8_alpha(cairo, fr, _prefix(strokes_px, slices, int(n)), line_width, True)
        a = (alpha.astype(np.float32) * (fg[3] / 255.0))[..., None]
        rgb = np.clip(np.rint(bg_rgb * (1 - a) + fg_rgb * a), 0, 255).astype(np.uint8)
        frames.append(Image.fromarray(rgb, "RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT))
    ms = max(20, int(round(interval * 1000)))  # browsers clamp GIF delays below 20 ms
    durations = [ms] * len(frames)
    durations[-1] = max(ms, int(round(hold * 1000)))
    buf = io.BytesIO()
    extra = {} if loop is None else {"loop": int(loop)}
    frames[0].save(
        buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, disposal=1, optimize=False,
        **extra,
    )  # fmt: skip
    return buf.getvalue()


def save_gif(data: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Write an animated GIF that draws the handwriting point by point; returns the path.

    Frames are rasterised with cairo (fast) and written with pillow.  ``speed`` is points drawn per second,
    ``fps`` the frame rate; at most ``max_frames`` frames are made (several points per frame if needed);
    the finished writing stays for ``hold`` seconds; ``loop=0`` repeats forever (``None``: play once).
    Size and style options as for :func:`render_image`.
    """
    return _write(path, gif_bytes(data, **options), "GIF")


def animate(
    data: Any,
    *,
    fps: float = 20.0,
    speed: float = 120.0,
    max_frames: int = 120,
    hold: float = 1.0,
    color: Any = "black",
    linewidth: float = 2.0,
    show_pen: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 80,
) -> Any:
    """A matplotlib ``FuncAnimation`` that writes the handwriting point by point.

    ``speed`` is points per second at ``fps`` frames per second (at most ``max_frames`` drawing frames; the
    finished writing is held for ``hold`` seconds).  The figure is not registered with pyplot, so a notebook
    shows only the animation: display ``anim.to_jshtml()`` (see :func:`to_html_animation`) or save it with
    ``anim.save(...)``.
    """
    from matplotlib.animation import FuncAnimation
    from matplotlib.figure import Figure

    ink = _ink(data, "animate")
    color = None if color is None else _rgba(color, "animate color")
    counts, interval = _frame_counts(len(ink.points), fps, speed, max_frames, "animate")
    hold_frames = max(0, int(round(hold / interval))) if hold > 0 else 0
    hold_frames = min(hold_frames, max(1, len(counts) // 2))
    schedule = list(counts) + [counts[-1]] * hold_frames
    xmin, ymin, xmax, ymax = ink.bounds
    if figsize is None:
        aspect = (xmax - xmin) / max(ymax - ymin, 1e-9)
        h = 2.0 + 0.6 * (ink.n_lines - 1)
        figsize = (float(np.clip(h * aspect, 2.5, 10.0)), h)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    pad = 0.03 * max(xmax - xmin, ymax - ymin, 1e-9)
    ax.set_xlim(xmin - pad, xmax + pad)
    ax.set_ylim(ymin - pad, ymax + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    t = ink.text if title is None else title
    if t:
        ax.set_title(t, fontsize=10)
    slices = ink.slices
    strokes = ink.strokes
    lines = [
        ax.plot([], [], color=color, linewidth=linewidth, solid_capstyle="round", solid_joinstyle="round")[0]
        for _ in strokes
    ]
    pen = ax.plot([], [], "o", color="tab:red", markersize=linewidth * 2.5)[0] if show_pen else None

    def update(i: int):
        n = int(schedule[i])
        for line, s, sl in zip(lines, strokes, slices):
            k = min(max(n - sl.start, 0), len(s))
            line.set_data(s[:k, 0], s[:k, 1])
            if k == 1:
                line.set_marker("o")
                line.set_markersize(linewidth)
        if pen is not None:
            last = ink.points[n - 1, :2]
            pen.set_data([last[0]], [last[1]])
            pen.set_visible(i < len(counts) - 1)
        return lines + ([pen] if pen is not None else [])

    return FuncAnimation(fig, update, frames=len(schedule), interval=interval * 1000.0, blit=False, repeat=True)


#: the glyphs that stand in for the icon font matplotlib's player loads from a CDN
_PLAYER_ICONS = {"fa fa-fast-backward": "\u23ee", "fa fa-step-backward": "\u25c1", "fa fa-play fa-flip-horizontal": "\u25c0",
                 "fa fa-pause": "\u23f8", "fa fa-play": "\u25b6", "fa fa-step-forward": "\u25b7",
                 "fa fa-fast-forward": "\u23ed", "fa fa-minus": "\u2212", "fa fa-plus": "+"}


def offline_player(html: str) -> str:
    """matplotlib's JavaScript player without its one network request (a stylesheet of icons from a CDN):
    the buttons show Unicode glyphs instead, so the page works offline and fetches nothing."""
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    return re.sub(r'<i class="([^"]*)"></i>', lambda m: _PLAYER_ICONS.get(m.group(1), ""), html)


def to_html_animation(data: Any, *, method: str = "jshtml", max_frames: int = 60, **options: Any) -> str:
    """HTML that plays the handwriting being written, for notebooks (``IPython.display.HTML(...)``).

    method: ``"jshtml"`` — matplotlib's JavaScript player with play/pause and a frame slider (frames embedded
        as PNG; ``max_frames`` keeps it small); ``"svg"`` — the animated SVG of :func:`to_svg` (tiny, smooth,
        replays on reload).  Other options go to :func:`animate` or :func:`to_svg`.
    """
    if method == "jshtml":
        anim = animate(data, max_frames=max_frames, **options)
        return offline_player(anim.to_jshtml(default_mode="once"))
    if method == "svg":
        return to_svg(data, animate=True, xml_declaration=False, **options)
    raise HandwritingError(f"to_html_animation: method must be 'jshtml' or 'svg', got {method!r}")
