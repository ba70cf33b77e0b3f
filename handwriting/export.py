"""Export handwriting for machines and files: G-code for pen plotters / CNC, and :func:`save`, which picks the
format from the file suffix (``.svg``, ``.png``, ``.gif``, ``.gcode``/``.nc``/``.ngc``, ``.html``).

G-code
------
:func:`to_gcode` writes millimetres (``G21``) in absolute coordinates (``G90``).  The lower-left corner of the
ink's bounding box goes to ``origin``; the writing's y (upwards) is the machine's +Y.  Each stroke is: lift
(``pen_up``), travel to its first point (``G0``, or ``G1`` at ``travel_rate``), lower (``pen_down``), then
``G1`` moves at ``feed_rate`` mm/min.  The pen commands are configurable for the two common kinds of
machine::

    to_gcode(x)                                        # Z axis: pen up "G0 Z5", pen down "G1 Z0 F{feed_rate}"
    to_gcode(x, pen_up="M3 S90", pen_down="M3 S30")    # servo pen lift (GRBL spindle PWM)
    to_gcode(x, pen_up="M5\\nG4 P0.2", pen_down="M3 S1000\\nG4 P0.2")   # several lines, with a dwell

``{feed_rate}`` in a pen command is replaced by the feed rate.  :func:`parse_gcode` reads such programs back
into strokes (in mm) — enough for checking our own output and simple programs, not a full interpreter.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import DataError, HandwritingError
from .render import OutputError, _ink, _write

__all__ = ["to_gcode", "save_gcode", "parse_gcode", "save", "check_output", "SUFFIXES", "DEFAULT_PEN_UP", "DEFAULT_PEN_DOWN"]

DEFAULT_PEN_UP = "G0 Z5"
DEFAULT_PEN_DOWN = "G1 Z0 F{feed_rate}"

# suffix -> format name used by save()
SUFFIXES = {
    ".svg": "svg",
    ".png": "png",
    ".gif": "gif",
    ".gcode": "gcode",
    ".nc": "gcode",
    ".ngc": "gcode",
    ".html": "html",
    ".htm": "html",
}

_WORD = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))")


def _num(v: float, decimals: int) -> str:
    s = f"{v:.{decimals}f}"
    if float(s) == 0:
        s = f"{0.0:.{decimals}f}"  # no "-0.000"
    return s


def _pen_lines(cmd: str, name: str, feed: str) -> list[str]:
    if not isinstance(cmd, str) or not cmd.strip():
        raise HandwritingError(f"to_gcode: {name} must be a non-empty G-code command such as 'G0 Z5' or 'M3 S90'")
    lines = [ln.strip() for ln in cmd.replace("{feed_rate}", feed).splitlines() if ln.strip()]
    for ln in lines:
        words = {w for w, _ in _WORD.findall(_strip_comment(ln).upper())}
        if words & {"X", "Y"}:
            raise HandwritingError(
                f"to_gcode: {name}={cmd!r} moves X/Y; pen commands may only move Z or switch a servo/spindle"
            )
    return lines


def _strip_comment(line: str) -> str:
    return re.sub(r"\([^)]*\)", "", line.split(";", 1)[0])


def _key(line: str) -> str:
    """A command line without comments, feed words and spacing, for matching pen commands."""
    s = _strip_comment(line).upper()
    s = re.sub(r"F\s*(?:\{FEED_RATE\}|[-+]?(?:\d+\.?\d*|\.\d+))", "", s)
    return " ".join(s.split())


def _comment(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)


def to_gcode(
    data: Any,
    *,
    width_mm: float | None = None,
    height_mm: float | None = None,
    scale: float | None = None,
    origin: Sequence[float] = (0.0, 0.0),
    feed_rate: float = 1500.0,
    travel_rate: float | None = None,
    pen_up: str = DEFAULT_PEN_UP,
    pen_down: str = DEFAULT_PEN_DOWN,
    decimals: int = 3,
    text: str | None = None,
    line_mm: float = 10.0,
    return_home: bool = True,
    program_end: str | None = "M2",
) -> str:
    """G-code that draws the handwriting with a pen plotter (see the module docstring).

    data: offsets ``(N, 3)``, a :class:`~handwriting.strokes.Sample`, or a list of them (lines of text).
    width_mm / height_mm: size of the ink's bounding box (both: fit inside that box); or ``scale`` in mm per
        data unit; default: one line of writing is ``line_mm`` tall.
    origin: machine (X, Y) in mm of the ink's lower-left corner.
    feed_rate: drawing speed in mm/min; travel_rate: pen-up speed (``None``: rapid ``G0`` moves).
    pen_up / pen_down: the commands that lift / lower the pen (several lines allowed; ``{feed_rate}`` is filled in).
    decimals: digits after the decimal point (coordinates are exact to ``0.5 * 10**-decimals`` mm).
    text: written as comments at the top (default: the sample's text).
    """
    ink = _ink(data, "to_gcode")
    for name, v in (("width_mm", width_mm), ("height_mm", height_mm), ("scale", scale), ("line_mm", line_mm)):
        if v is not None and not (isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0):
            raise HandwritingError(f"to_gcode: {name} must be a positive number of millimetres, got {v!r}")
    if scale is not None and (width_mm is not None or height_mm is not None):
        raise HandwritingError("to_gcode: give either scale or width_mm/height_mm, not both")
    if not (feed_rate > 0 and (travel_rate is None or travel_rate > 0)):
        raise HandwritingError(
            f"to_gcode: feed rates must be > 0 mm/min, got feed_rate={feed_rate!r}, travel_rate={travel_rate!r}"
        )
    if not (isinstance(decimals, int) and 0 <= decimals <= 6):
        raise HandwritingError(f"to_gcode: decimals must be an integer from 0 to 6, got {decimals!r}")
    if len(origin) != 2:
        raise HandwritingError(f"to_gcode: origin must be (x_mm, y_mm), got {origin!r}")
    feed = _num(feed_rate, 1).rstrip("0").rstrip(".")
    up = _pen_lines(pen_up, "pen_up", feed)
    down = _pen_lines(pen_down, "pen_down", feed)
    if _key(up[0]) == _key(down[0]):
        raise HandwritingError(
            f"to_gcode: pen_up and pen_down start with the same command ({up[0]!r}); they must differ so the "
            "pen state can be told apart"
        )

    xmin, ymin, xmax, ymax = ink.bounds
    span_x, span_y = xmax - xmin, ymax - ymin
    if scale is None:
        fits = []
        if width_mm is not None and span_x > 0:
            fits.append(width_mm / span_x)
        if height_mm is not None and span_y > 0:
            fits.append(height_mm / span_y)
        scale = min(fits) if fits else line_mm / ink.line_height
    ox, oy = float(origin[0]), float(origin[1])
    xy = np.empty((len(ink.points), 2))
    xy[:, 0] = ox + (ink.points[:, 0] - xmin) * scale
    xy[:, 1] = oy + (ink.points[:, 1] - ymin) * scale

    def xy_words(p: np.ndarray) -> str:
        return f"X{_num(p[0], decimals)} Y{_num(p[1], decimals)}"

    slices = ink.slices
    label = ink.text if text is None else text
    out = ["; handwriting G-code (millimetres, absolute)"]
    for ln in (label or "").splitlines():
        out.append(f"; text: {_comment(ln)}")
    out.append(
        f"; {len(slices)} strokes, ink {_num(span_x * scale, 2)} x {_num(span_y * scale, 2)} mm, "
        f"lower-left corner at X{_num(ox, decimals)} Y{_num(oy, decimals)}"
    )
    out.append(f"; pen up: {' | '.join(up)}; pen down: {' | '.join(down)}")
    out += ["G21 ; millimetres", "G90 ; absolute coordinates"]
    out += up
    travel = "G0 {}" if travel_rate is None else "G1 {} F" + _num(travel_rate, 1).rstrip("0").rstrip(".")
    for k, sl in enumerate(slices):
        pts = xy[sl]
        out.append(f"; stroke {k + 1}/{len(slices)}")
        out.append(travel.format(xy_words(pts[0])))
        out += down
        for j, p in enumerate(pts[1:]):
            out.append(f"G1 {xy_words(p)}" + (f" F{feed}" if j == 0 else ""))
        out += up
    if return_home:
        out.append(travel.format(f"X{_num(ox, decimals)} Y{_num(oy, decimals)}"))
    if program_end:
        out.append(program_end)
    return "\n".join(out) + "\n"


def save_gcode(data: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Write :func:`to_gcode` output atomically (nothing half-written on failure); returns the path."""
    return _write(path, to_gcode(data, **options), "G-code")


def parse_gcode(
    text: str,
    *,
    pen_up: str = DEFAULT_PEN_UP,
    pen_down: str = DEFAULT_PEN_DOWN,
    where: str = "G-code",
) -> list[np.ndarray]:
    """Read the pen-down paths of a G-code program back as a list of ``(n_i, 2)`` point arrays in mm.

    Tracks the pen (lines whose first command matches ``pen_up`` / ``pen_down``, comments and feed words
    ignored; otherwise a Z move: Z > 0 is up, Z <= 0 down), ``G0``/``G1`` X/Y moves (modal), ``G20``/``G21``
    (inches/mm) and ``G90``/``G91`` (absolute/relative).  A stroke starts where the pen goes down and ends
    where it goes up.  Arcs (``G2``/``G3``) are not supported and raise :class:`DataError`.
    """
    up_key = _key(pen_up.strip().splitlines()[0]) if pen_up.strip() else None
    down_key = _key(pen_down.strip().splitlines()[0]) if pen_down.strip() else None
    strokes: list[np.ndarray] = []
    current: list[tuple[float, float]] | None = None
    pos = [0.0, 0.0]
    unit = 1.0
    relative = False
    motion: int | None = None

    def lift() -> None:
        nonlocal current
        if current:
            strokes.append(np.asarray(current, dtype=np.float64))
        current = None

    for lineno, raw in enumerate(text.splitlines(), start=1):
        key = _key(raw)
        if not key or key.startswith("%"):
            continue
        if key == up_key:
            lift()
            continue
        if key == down_key:
            if current is None:
                current = [(pos[0], pos[1])]
            continue
        words = _WORD.findall(key)
        if _WORD.sub("", key).strip():
            raise DataError(f"{where} line {lineno}: cannot read {raw.strip()!r}; expected words like 'G1 X1.5 Y2'")
        target: dict[str, float] = {}
        z = None
        for letter, value in words:
            v = float(value)
            if letter == "G":
                g = int(round(v)) if abs(v - round(v)) < 1e-9 else v
                if g in (0, 1):
                    motion = int(g)
                elif g in (2, 3):
                    raise DataError(
                        f"{where} line {lineno}: arcs (G2/G3) are not supported; export polylines (G1) instead"
                    )
                elif g == 20:
                    unit = 25.4
                elif g == 21:
                    unit = 1.0
                elif g == 90:
                    relative = False
                elif g == 91:
                    relative = True
            elif letter in ("X", "Y"):
                target[letter] = v * unit
            elif letter == "Z":
                z = v * unit
        if z is not None and not target:
            if z > 0:
                lift()
            elif current is None:
                current = [(pos[0], pos[1])]
        if target:
            if motion is None:
                raise DataError(
                    f"{where} line {lineno}: an X/Y move before any G0/G1 ({raw.strip()!r}); start moves with G0 or G1"
                )
            for i, axis in enumerate("XY"):
                if axis in target:
                    pos[i] = pos[i] + target[axis] if relative else target[axis]
            if current is not None:
                current.append((pos[0], pos[1]))
            if z is not None and z > 0:
                lift()
    lift()
    return strokes


def _html_document(data: Any, **options: Any) -> str:
    from html import escape

    from .animation import to_html_animation

    ink = _ink(data, "save html")
    body = to_html_animation(data, **options)
    title = escape(ink.text.replace("\n", " ") or "handwriting")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def check_output(path: str | os.PathLike, formats: dict[str, str] | None = SUFFIXES) -> str | None:
    """Fail in a moment, before the slow work, when ``path`` cannot be written: its suffix must be one of
    ``formats`` (``None``: any suffix), it must not be a directory, and its folder must exist, or be
    creatable in an existing one, and be writable.  Raises :class:`OutputError` naming the path and the fix;
    returns the format the suffix names (``None`` when ``formats`` is ``None``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(
            f"cannot write to {path}: it is a directory; give a file path inside it, e.g. {path / 'handwriting.svg'}"
        )
    fmt = None if formats is None else formats.get(path.suffix.lower())
    if formats is not None and fmt is None:
        raise OutputError(
            f"cannot save {path}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
            f"{', '.join(sorted(formats))} (e.g. {path.with_suffix(next(iter(formats)))})"
        )
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"cannot write {path}: {anc} is a file, not a directory; choose another output directory")
    try:  # os.access says yes to root, also on read-only file systems: try it
        with tempfile.TemporaryFile(dir=anc):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: cannot create a file in {anc} ({exc.strerror or exc}); choose a directory "
            "you can write to"
        ) from None
    return fmt


def save(data: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Write handwriting to ``path`` in the format its suffix names; returns the path.

    ``.svg`` → :func:`~handwriting.render.save_svg`, ``.png`` → :func:`~handwriting.render.save_png`,
    ``.gif`` → :func:`~handwriting.animation.save_gif`, ``.gcode``/``.nc``/``.ngc`` → :func:`save_gcode`,
    ``.html``/``.htm`` → a page playing :func:`~handwriting.animation.to_html_animation`.  ``options`` go to
    that function.  Files are written atomically: on any error nothing (or the previous file) is left.
    """
    from . import animation, render

    path = Path(path)
    fmt = check_output(path)
    if fmt == "svg":
        return render.save_svg(data, path, **options)
    if fmt == "png":
        return render.save_png(data, path, **options)
    if fmt == "gif":
        return animation.save_gif(data, path, **options)
    if fmt == "gcode":
        return save_gcode(data, path, **options)
    return _write(path, _html_document(data, **options), "HTML")
