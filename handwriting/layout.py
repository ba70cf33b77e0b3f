"""The one path from text to a page: wrap the text into lines, cut each line into the pieces a model writes in
one go, join the written pieces of a line side by side on a baseline, and stack the lines top to bottom.

1. :func:`wrap_text` — the text's lines, at most ``max_line_chars`` characters each;
2. :func:`line_pieces` — a line's pieces (at most ``piece_chars`` characters each) and whether a space
   separates two neighbours;
3. the pieces are written (by :func:`handwriting.generate.write`, the page writer, the panel);
4. :func:`assemble_lines` — the written pieces back into lines (:func:`join_pieces` for lines of several);
5. :func:`layout_lines` — the lines stacked into one offsets sequence (what :mod:`handwriting.render` does
   with a list of lines too).

Everything here is numpy on ``(N, 3)`` offsets in data units (:mod:`handwriting.strokes`); no model is involved.
"""

from __future__ import annotations

import textwrap
from typing import Any, Sequence

import numpy as np

from .errors import DataError
from .strokes import Sample, align, check_offsets, to_absolute, to_offsets

__all__ = ["wrap_text", "line_pieces", "join_pieces", "assemble_lines", "layout_lines"]


def wrap_text(text: str, max_line_chars: int) -> list[str]:
    """Split at line breaks and wrap each paragraph at word boundaries into lines of at most
    ``max_line_chars`` characters (longer words are cut); runs of white space become one space.  Blank lines
    between paragraphs are kept as ``""``; leading and trailing blank lines are dropped."""
    if max_line_chars < 1:
        raise DataError(f"max_line_chars must be at least 1, got {max_line_chars!r}")
    lines: list[str] = []
    for para in text.splitlines():
        para = " ".join(para.split())
        if not para:
            lines.append("")
            continue
        lines += textwrap.wrap(para, max_line_chars, break_long_words=True, break_on_hyphens=False)
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def line_pieces(line: str, piece_chars: int) -> tuple[list[str], list[bool]]:
    """The pieces a model writes ``line`` in, one go each (at most ``piece_chars`` characters, cut at spaces
    where possible; the line itself when it fits), and for each boundary between two pieces whether a space
    separates them (``False`` where a long word was cut).

    As few pieces as wrapping at ``piece_chars`` gives, made as even as the words allow: the pieces of a line
    are written side by side in one batch, so the longest sets how long writing takes (a 25 + 4 split of 29
    characters waits for the 25)."""
    if not line:
        return [], []
    if len(line) <= piece_chars:
        return [line], []
    greedy = wrap_text(line, piece_chars)
    # no narrower than the longest word (that would cut it), nor than an even share (a break drops a space)
    shortest = min(piece_chars, max(max(map(len, line.split())), -(-(len(line) - len(greedy) + 1) // len(greedy))))
    pieces = next(p for width in range(shortest, piece_chars + 1)
                  if len(p := wrap_text(line, width)) <= len(greedy))
    gaps, pos = [], 0
    for p in pieces[:-1]:
        pos = line.index(p, pos) + len(p)
        gaps.append(pos < len(line) and line[pos] == " ")
    return pieces, gaps


def join_pieces(pieces: Sequence[np.ndarray], texts: Sequence[str] | None = None,
                gaps: Sequence[bool] | None = None, space: float = 0.8) -> np.ndarray:
    """Parts of one line, written one after another (by a model whose context holds only a few words, or
    that drifts on lines longer than it was trained on), joined into that line.  Each piece is turned so
    that its baseline is level (:func:`~handwriting.strokes.align` without the slant step: a piece written
    in one go tends to climb or sink), its middle height (median y) is put on the first piece's, and it
    starts ``space`` mean character widths (from ``texts``; a third of the median height without them) to
    the right of the previous piece — a fifth of that where ``gaps`` says a word was cut there."""
    arrays = [check_offsets(a, f"piece {i}") for i, a in enumerate(pieces)]
    if not arrays:
        raise DataError("join_pieces: no pieces to join")
    points = [to_absolute(align(a, slant=False)) for a in arrays]
    widths = [float(np.ptp(p[:, 0])) for p in points]
    width = sum(widths) / sum(map(len, texts)) if texts is not None and sum(map(len, texts)) > 0 else 0.0
    if not width > 0:
        width = float(np.median([np.ptp(p[:, 1]) for p in points])) / 3 or 1.0
    out, right, middle = [], 0.0, None
    for k, p in enumerate(points):
        m = float(np.median(p[:, 1]))
        middle = m if middle is None else middle
        gap = space * width * (1.0 if gaps is None or k == 0 or gaps[k - 1] else 0.2)
        p[:, 0] += (right + gap if out else 0.0) - p[:, 0].min()
        p[:, 1] += middle - m
        right = float(p[:, 0].max())
        out.append(p)
    return to_offsets(np.vstack(out)).astype(np.float32)


def assemble_lines(planned: Sequence[tuple[list[str], list[bool]]],
                   pieces: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Lines from their written pieces: ``planned`` holds :func:`line_pieces` of every line, ``pieces`` the
    offsets of all those pieces in order.  A blank line gives ``None``, a line of one piece that piece, a
    longer one its pieces joined (:func:`join_pieces`)."""
    it = iter(pieces)
    out: list[np.ndarray | None] = []
    for names, gaps in planned:
        got = [next(it) for _ in names]
        out.append(None if not got else got[0] if len(got) == 1 else join_pieces(got, names, gaps))
    return out


def layout_lines(lines: Sequence[Any], line_gap: float = 0.6, line_height: float | None = None) -> np.ndarray:
    """Lay out lines top to bottom as one offsets sequence: each line starts at x = 0 and its baseline
    (10th percentile of its y, robust to descenders) sits one pitch below the previous line's; the pitch is
    ``line_height`` (data units) if given, else ``(1 + line_gap)`` × the median ink height of the lines.
    ``lines`` holds offsets arrays or :class:`~handwriting.strokes.Sample` objects; ``None`` entries are blank
    lines (they take a pitch and draw nothing).  The pen lifts between lines (each line ends a stroke)."""
    arrays = [None if a is None else check_offsets(a.offsets if isinstance(a, Sample) else a, f"layout_lines: line {i}")
              for i, a in enumerate(lines)]
    drawn = [a for a in arrays if a is not None]
    if not drawn:
        raise DataError("layout_lines: nothing to lay out (no lines, or every line is blank)")
    if line_height is None:
        heights = [h for h in (float(np.ptp(to_absolute(a)[:, 1])) for a in drawn) if h > 0]
        pitch = (1.0 + line_gap) * (float(np.median(heights)) if heights else 1.0)
    elif line_height > 0:
        pitch = float(line_height)
    else:
        raise DataError(f"layout_lines: line_height must be > 0, got {line_height!r}")
    out = []
    for k, a in enumerate(arrays):
        if a is None:
            continue
        p = to_absolute(a)
        p[:, 0] -= p[:, 0].min()
        p[:, 1] += -np.percentile(p[:, 1], 10) - k * pitch
        out.append(p)
    return to_offsets(np.vstack(out)).astype(np.float32)
