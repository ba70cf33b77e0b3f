"""G-code export and its parser, and `save` choosing the format by suffix."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from handwriting import export  # noqa: E402
from handwriting.errors import DataError, HandwritingError  # noqa: E402
from handwriting.strokes import Sample, StrokeError, from_strokes  # noqa: E402

STROKES = [
    np.array([[0.0, 2.0], [0.0, 1.0], [0.5, 1.0]]),
    np.array([[1.0, 0.5], [1.5, 0.0], [2.0, 0.5]]),
    np.array([[3.0, 2.0]]),  # a dot
]
OFFSETS = from_strokes(STROKES)


def mm(strokes, scale, origin=(0.0, 0.0)):
    pts = np.vstack(strokes)
    lo = pts.min(axis=0)
    return [(s - lo) * scale + np.asarray(origin) for s in strokes]


def assert_strokes_close(got, want, tol):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= tol


def code_lines(gcode: str) -> list[str]:
    return [ln.split(";")[0].strip() for ln in gcode.splitlines() if ln.split(";")[0].strip()]


# ---------------------------------------------------------------------------------------------------------
# G-code


def test_gcode_round_trip_equals_the_scaled_strokes():
    g = export.to_gcode(OFFSETS, height_mm=30, origin=(10, 20), decimals=3)
    got = export.parse_gcode(g)
    assert_strokes_close(got, mm(STROKES, 15.0, (10, 20)), 0.5e-3 + 1e-9)  # 2 units tall -> 15 mm per unit


@pytest.mark.parametrize("decimals", [0, 1, 2, 4])
def test_gcode_precision_follows_decimals(decimals):
    got = export.parse_gcode(export.to_gcode(OFFSETS, scale=7.3, decimals=decimals))
    assert_strokes_close(got, mm(STROKES, 7.3), 10.0**-decimals)


def test_gcode_width_and_box_fit():
    got = np.vstack(export.parse_gcode(export.to_gcode(OFFSETS, width_mm=90)))
    assert np.ptp(got[:, 0]) == pytest.approx(90, abs=1e-3)
    got = np.vstack(export.parse_gcode(export.to_gcode(OFFSETS, width_mm=90, height_mm=20)))
    assert np.ptp(got[:, 0]) <= 90 + 1e-3 and np.ptp(got[:, 1]) == pytest.approx(20, abs=1e-3)
    got = np.vstack(export.parse_gcode(export.to_gcode(OFFSETS)))  # default: a line is 10 mm tall
    assert np.ptp(got[:, 1]) == pytest.approx(10, abs=1e-3)


def test_gcode_structure_pen_commands_and_feeds():
    g = export.to_gcode(Sample(OFFSETS, text="hi\nthere"), height_mm=20, feed_rate=1200)
    lines = code_lines(g)
    assert "; text: hi" in g and "; text: there" in g
    first_move = next(i for i, ln in enumerate(lines) if "X" in ln)
    assert {"G21", "G90"} <= set(lines[:first_move])
    assert lines.count("G1 Z0 F1200") == len(STROKES)  # one pen-down per stroke
    assert lines.count("G0 Z5") == len(STROKES) + 1  # a lift at the start and after every stroke
    # every travel (G0 X/Y) happens with the pen up; every G1 X/Y with the pen down
    down = False
    for ln in lines:
        if ln.startswith("G1 Z0"):
            down = True
        elif ln == "G0 Z5":
            down = False
        elif ln.startswith("G0 X"):
            assert not down
        elif ln.startswith("G1 X"):
            assert down
    first_draws = [nxt for ln, nxt in zip(lines, lines[1:]) if ln.startswith("G1 Z0") and nxt.startswith("G1 X")]
    assert len(first_draws) == 2 and all(ln.endswith(" F1200") for ln in first_draws)  # the dot has no G1 move
    assert lines[-1] == "M2"


def test_gcode_servo_commands_and_travel_rate_round_trip():
    up, down = "M3 S90", "M3 S30\nG4 P0.2"
    g = export.to_gcode(OFFSETS, height_mm=20, pen_up=up, pen_down=down, travel_rate=4000, program_end=None)
    lines = code_lines(g)
    assert lines.count("M3 S30") == len(STROKES) and lines.count("G4 P0.2") == len(STROKES)
    assert lines.count("M3 S90") == len(STROKES) + 1
    assert not any(ln.startswith("G0") for ln in lines) and any(ln.endswith("F4000") for ln in lines)
    assert_strokes_close(export.parse_gcode(g, pen_up=up, pen_down=down), mm(STROKES, 10.0), 0.5e-3 + 1e-9)


def test_gcode_of_lines_of_text_keeps_every_stroke():
    g = export.to_gcode([OFFSETS, OFFSETS], height_mm=50)
    got = export.parse_gcode(g)
    assert len(got) == 2 * len(STROKES)
    assert np.ptp(np.vstack(got)[:, 1]) == pytest.approx(50, abs=1e-3)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(-99, 99), st.integers(-99, 99)), min_size=1, max_size=6), min_size=1, max_size=5
    ),
    st.floats(0.05, 5.0),
)
def test_gcode_round_trips_any_strokes(strokes, scale):
    strokes = [np.asarray(s, dtype=np.float64) for s in strokes]
    got = export.parse_gcode(export.to_gcode(from_strokes(strokes), scale=scale, decimals=3))
    assert_strokes_close(got, mm(strokes, scale), 0.5e-3 + 1e-6)


def test_gcode_rejects_bad_options():
    with pytest.raises(HandwritingError, match="must differ"):
        export.to_gcode(OFFSETS, pen_up="M3 S50", pen_down="M3 S50")
    with pytest.raises(HandwritingError, match="moves X/Y"):
        export.to_gcode(OFFSETS, pen_up="G0 X0 Z5")
    with pytest.raises(HandwritingError, match="decimals"):
        export.to_gcode(OFFSETS, decimals=9)
    with pytest.raises(HandwritingError, match="height_mm"):
        export.to_gcode(OFFSETS, height_mm=-1)


def test_parse_gcode_handles_units_relative_moves_and_comments():
    text = """
    % program
    G20 G90 (inches)
    G0 Z0.2 ; up
    G0 X1 Y1
    G1 Z-0.01 F100
    G91
    G1 X1 ; relative
    Y1
    G0 Z0.2
    """
    (stroke,) = export.parse_gcode(text)
    np.testing.assert_allclose(stroke, np.array([[1, 1], [2, 1], [2, 2]]) * 25.4)


def test_parse_gcode_errors_name_the_line():
    with pytest.raises(DataError, match="line 3.*arcs"):
        export.parse_gcode("G21\nG1 Z0\nG2 X1 Y1 I1 J0\n")
    with pytest.raises(DataError, match="line 1"):
        export.parse_gcode("G1 X1 Y?\n")


# ---------------------------------------------------------------------------------------------------------
# save() by suffix


@pytest.mark.parametrize("suffix", [".svg", ".png", ".gif", ".gcode", ".nc", ".html"])
def test_save_dispatches_by_suffix(tmp_path, suffix):
    options = {".gif": {"max_frames": 4}, ".html": {"max_frames": 3}}.get(suffix, {})
    path = export.save(Sample(OFFSETS, text="hello"), tmp_path / f"out{suffix}", **options)
    assert path == tmp_path / f"out{suffix}" and [p.name for p in tmp_path.iterdir()] == [path.name]
    if suffix == ".svg":
        assert len(list(ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}path"))) == len(STROKES)
    elif suffix in (".png", ".gif"):
        with Image.open(path) as im:
            assert im.format == suffix[1:].upper()
            assert suffix == ".png" or im.n_frames > 1
    elif suffix in (".gcode", ".nc"):
        assert len(export.parse_gcode(path.read_text())) == len(STROKES)
    else:
        html = path.read_text()
        assert html.startswith("<!DOCTYPE html>") and "<title>hello</title>" in html and "<script" in html


def test_save_unknown_suffix_names_the_path_and_the_choices(tmp_path):
    target = tmp_path / "out.jpeg"
    with pytest.raises(HandwritingError) as err:
        export.save(OFFSETS, target)
    msg = str(err.value)
    assert str(target) in msg and ".svg" in msg and ".gcode" in msg
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(HandwritingError, match="no suffix"):
        export.save(OFFSETS, tmp_path / "out")


@pytest.mark.parametrize("suffix", [".svg", ".png", ".gcode"])
def test_save_into_unwritable_place_raises_and_leaves_nothing(tmp_path, suffix):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" / f"out{suffix}"
    with pytest.raises(HandwritingError) as err:
        export.save(OFFSETS, target)
    assert str(target) in str(err.value) and "directory" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not apply to root")
def test_save_into_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(HandwritingError, match="permission"):
            export.save(OFFSETS, ro / "out.svg")
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o700)


def test_save_writes_atomically_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "keep.gcode"
    target.write_text("old")
    bad = OFFSETS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(StrokeError, match="row 0"):
        export.save(bad, target)

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(HandwritingError, match="No space left"):
        export.save(OFFSETS, target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["keep.gcode"]


def test_save_to_a_directory_path_is_refused(tmp_path):
    target = tmp_path / "d.svg"
    target.mkdir()
    with pytest.raises(HandwritingError, match="is a directory"):
        export.save(OFFSETS, target)
    assert not list(target.iterdir())
