"""handwriting.layout: the one path from text to a page, shared by write(), the page writer, the panel and
the renderer's lists of lines (the wrapping, pieces and joining themselves are tested in test_generate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from handwriting import generate, layout, render
from handwriting.errors import DataError
from handwriting.strokes import Sample, from_strokes, to_absolute


def test_every_caller_uses_the_one_layout():
    for name in ("wrap_text", "line_pieces", "join_pieces", "assemble_lines", "layout_lines"):
        assert getattr(generate, name) is getattr(layout, name)
    assert render.stack_lines is layout.layout_lines


def test_wrap_text_breaks_lines_like_text_and_keeps_paragraphs():
    assert layout.wrap_text("one\r\ntwo\rthree", 10) == ["one", "two", "three"]
    assert layout.wrap_text("a\n\n\nb\n", 10) == ["a", "", "", "b"]


def test_layout_lines_takes_samples_blank_lines_and_a_fixed_pitch():
    a = from_strokes([np.array([[5.0, 0.0], [6.0, 1.0]])])
    out = to_absolute(layout.layout_lines([Sample(a, text="a"), None, a], line_height=2.0))
    assert out[:, 0].min() == 0 and out[2:, 1].min() - out[:2, 1].min() == pytest.approx(-4.0)  # two pitches down
    with pytest.raises(DataError, match="line_height"):
        layout.layout_lines([a], line_height=0)
    with pytest.raises(DataError, match="nothing to lay out"):
        layout.layout_lines([])
