"""Rendering: SVG geometry, cairo rasters and PNGs, GIF animation, matplotlib plots, line stacking."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from handwriting import render  # noqa: E402
from handwriting.errors import HandwritingError  # noqa: E402
from handwriting.strokes import Sample, StrokeError, from_strokes, to_offsets, to_strokes  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"

# three strokes: an "L"-ish hook at the top left, a "v" at the bottom right, and a dot (one point)
STROKES = [
    np.array([[0.0, 2.0], [0.0, 1.0], [0.5, 1.0]]),
    np.array([[1.0, 0.5], [1.5, 0.0], [2.0, 0.5]]),
    np.array([[3.0, 2.0]]),
]
OFFSETS = from_strokes(STROKES)
XMIN, YMIN, XMAX, YMAX = 0.0, 0.0, 3.0, 2.0


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def parse_path(d: str) -> np.ndarray:
    """'M x y L x y x y ...' → (n, 2) points."""
    assert d.startswith("M "), d
    nums = [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", d)]
    assert "M" not in d[1:], "one subpath per <path>"
    return np.array(nums).reshape(-1, 2)


def svg_paths(svg: str) -> tuple[ET.Element, list[np.ndarray], list[ET.Element]]:
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == SVG_NS + "svg"
    elems = list(root.iter(SVG_NS + "path"))
    return root, [parse_path(e.get("d")) for e in elems], elems


def expected_px(strokes, scale, pad, ymax=YMAX, xmin=XMIN):
    return [np.stack([pad + (s[:, 0] - xmin) * scale, pad + (ymax - s[:, 1]) * scale], axis=1) for s in strokes]


# ---------------------------------------------------------------------------------------------------------
# SVG


def test_svg_has_one_path_per_stroke_matching_the_points():
    svg = render.to_svg(OFFSETS, scale=40, padding=10, decimals=3)
    root, paths, _ = svg_paths(svg)
    assert root.get("viewBox") == "0 0 140 100"  # 3 units * 40 + 2 * 10, 2 units * 40 + 2 * 10
    assert len(paths) == len(STROKES)
    for got, want in zip(paths, expected_px(STROKES, 40, 10)):
        if len(want) == 1:  # a dot is drawn as a zero-length segment
            assert len(got) == 2 and np.allclose(got[0], got[1])
            got = got[:1]
        np.testing.assert_allclose(got, want, atol=0.5e-3)


def test_svg_top_of_the_writing_is_at_the_top_of_the_image():
    _, paths, _ = svg_paths(render.to_svg(OFFSETS, scale=10, padding=0))
    # the hook starts at y = 2 (the top): SVG y = 0; the "v" touches y = 0 (the bottom): SVG y = height
    assert paths[0][0, 1] == pytest.approx(0.0)
    assert paths[1][1, 1] == pytest.approx(20.0)


def test_svg_height_option_sets_the_size_and_keeps_the_aspect():
    root, paths, _ = svg_paths(render.to_svg(OFFSETS, height=120, padding=10))
    w, h = (float(v) for v in root.get("viewBox").split()[2:])
    assert h == pytest.approx(120) and w == pytest.approx(10 + 3 * 50 + 10)
    assert float(root.get("height")) == pytest.approx(120)


def test_svg_style_options_and_escaped_title():
    sample = Sample(OFFSETS, text='a <b> & "c"')
    svg = render.to_svg(sample, color="#ff0000", background="white", stroke_width=3, xml_declaration=False)
    root, _, _ = svg_paths(svg)
    assert root.find(SVG_NS + "title").text == 'a <b> & "c"'
    g = root.find(SVG_NS + "g")
    assert g.get("stroke") == "#ff0000" and g.get("stroke-width") == "3" and g.get("fill") == "none"
    assert root.find(SVG_NS + "rect").get("fill") == "#ffffff"


def test_animated_svg_parses_and_draws_strokes_in_order():
    svg = render.to_svg(OFFSETS, animate=True, duration=3.0, scale=40)
    root, paths, elems = svg_paths(svg)
    assert len(paths) == len(STROKES)
    assert "@keyframes" in root.find(SVG_NS + "style").text
    delays, durs = [], []
    for e, pts in zip(elems, paths):
        style = dict(kv.split(":") for kv in e.get("style").split(";"))
        delays.append(float(style["animation-delay"].rstrip("s")))
        durs.append(float(style["animation-duration"].rstrip("s")))
        length = np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()
        if length > 0:  # hidden by the dash offset until its turn
            assert float(style["stroke-dashoffset"]) >= length
    assert delays == sorted(delays) and delays[0] == 0
    assert delays[-1] + durs[-1] == pytest.approx(3.0, abs=0.01)
    # time proportional to length: the hook (1.5 units) and the "v" (about 1.41 units)
    assert durs[0] / durs[1] == pytest.approx(1.5 / np.sqrt(2), rel=0.01)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), min_size=1, max_size=6), min_size=1, max_size=4
    )
)
def test_svg_round_trips_any_strokes(strokes):
    strokes = [np.asarray(s, dtype=np.float64) for s in strokes]
    offsets = from_strokes(strokes)
    pts = np.vstack(strokes)
    _, paths, _ = svg_paths(render.to_svg(offsets, scale=2.0, padding=5, decimals=3))
    assert len(paths) == len(strokes)
    want = expected_px(strokes, 2.0, 5, ymax=pts[:, 1].max(), xmin=pts[:, 0].min())
    for got, w in zip(paths, want):
        np.testing.assert_allclose(got[: len(w)], w, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------
# cairo rasters and PNG


def ink_at(img: np.ndarray, x: float, y: float, scale: float, pad: float) -> int:
    col, row = pad + (x - XMIN) * scale, pad + (YMAX - y) * scale
    return int(img[int(round(row)), int(round(col))])


def test_render_image_grey_shape_ink_and_background():
    img = render.render_image(OFFSETS, scale=40, padding=10, line_width=4)
    assert img.dtype == np.uint8 and img.shape == (100, 140)
    for x, y in [(0.0, 1.5), (0.25, 1.0), (1.25, 0.25), (1.75, 0.25), (3.0, 2.0)]:  # on the strokes, the dot
        assert ink_at(img, x, y, 40, 10) < 80, (x, y)
    for x, y in [(2.5, 1.0), (1.0, 1.8)]:  # well away from any stroke
        assert ink_at(img, x, y, 40, 10) == 255, (x, y)
    assert img[0, 0] == img[0, -1] == img[-1, 0] == img[-1, -1] == 255


def test_render_image_is_upright():
    img = render.render_image(OFFSETS, height=60, padding=4, line_width=3)
    rows = np.flatnonzero((img < 128).any(axis=1))
    top_cols = np.flatnonzero(img[rows[0]] < 128)
    # the highest ink is the hook's start (x = 0) or the dot (x = 3), not the "v" (bottom, middle)
    assert top_cols.min() < img.shape[1] * 0.1 or top_cols.max() > img.shape[1] * 0.9
    bottom_cols = np.flatnonzero(img[rows[-1]] < 128)
    assert 0.35 < bottom_cols.mean() / img.shape[1] < 0.65  # the bottom of the "v"


def test_render_image_sizes():
    assert render.render_image(OFFSETS, height=64).shape[0] == 64
    assert render.render_image(OFFSETS, width=200).shape[1] == 200
    assert render.render_image(OFFSETS, width=300, height=40).shape == (40, 300)
    h = render.render_image(OFFSETS).shape[0]
    assert 48 <= h <= 60  # default: a line is line_px = 48 pixels tall (+ padding)


def test_render_image_rgba_transparent_background_and_colour():
    img = render.render_image(OFFSETS, scale=40, padding=10, line_width=4, mode="RGBA", color="red", background=None)
    assert img.shape == (100, 140, 4) and img.dtype == np.uint8
    assert img[0, 0, 3] == 0
    row, col = int(10 + (YMAX - 1.5) * 40), 10
    assert tuple(img[row, col]) == (255, 0, 0, 255)


def test_render_image_colours_and_antialias_off():
    img = render.render_image(OFFSETS, scale=20, color="white", background="black", antialias=False)
    assert set(np.unique(img)) <= {0, 255} and img[0, 0] == 0 and img.max() == 255


def test_render_image_rejects_bad_input_naming_the_problem():
    bad = OFFSETS.copy()
    bad[-1, 2] = 0
    with pytest.raises(StrokeError, match="last row"):
        render.render_image(bad)
    with pytest.raises(HandwritingError, match="colour"):
        render.render_image(OFFSETS, color="not-a-colour")
    with pytest.raises(HandwritingError, match="scale or width/height"):
        render.render_image(OFFSETS, scale=10, height=20)
    with pytest.raises(HandwritingError, match="mode"):
        render.render_image(OFFSETS, mode="CMYK")


def test_save_png_decodes_with_the_requested_size_and_ink(tmp_path):
    path = render.save_png(OFFSETS, tmp_path / "out.png", height=100, padding=10, line_width=4)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (140, 100)
        grey = np.asarray(im.convert("L"))
    assert ink_at(grey, 0.0, 1.5, 40, 10) < 80 and ink_at(grey, 1.25, 0.25, 40, 10) < 80
    assert grey[0, 0] == grey[-1, -1] == 255
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary files left


def test_save_png_transparent(tmp_path):
    path = render.save_png(OFFSETS, tmp_path / "t.png", height=50, background=None)
    with Image.open(path) as im:
        assert im.mode == "RGBA" and im.getpixel((0, 0))[3] == 0


def test_save_png_into_unwritable_place_raises_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    target = blocker / "out.png"
    with pytest.raises(HandwritingError) as err:
        render.save_png(OFFSETS, target)
    assert str(target) in str(err.value) and isinstance(err.value, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_dir"]


# ---------------------------------------------------------------------------------------------------------
# animation


def test_save_gif_draws_progressively(tmp_path):
    offsets = from_strokes([np.stack([np.linspace(0, 4, 40), np.sin(np.linspace(0, 6, 40))], axis=1)])
    path = render.save_gif(offsets, tmp_path / "a.gif", fps=10, speed=40, max_frames=8, height=40)
    with Image.open(path) as im:
        assert im.format == "GIF" and 1 < im.n_frames <= 8
        inked = []
        for k in range(im.n_frames):
            im.seek(k)
            inked.append(int((np.asarray(im.convert("L")) < 128).sum()))
    assert inked == sorted(inked) and inked[0] < inked[-1]
    # frames are held until the file is written: their pixels together are capped, before any is drawn
    with pytest.raises(HandwritingError, match=r"save_gif: 8 frames of .* pixels would hold .*lower the width"):
        render.save_gif(offsets, tmp_path / "b.gif", fps=10, speed=40, max_frames=8, height=6_000)
    assert not (tmp_path / "b.gif").exists()


def test_animate_frames_reveal_points_and_end_complete():
    anim = render.animate(OFFSETS, fps=10, speed=10, max_frames=5, hold=0)
    anim._init_draw()
    anim._draw_frame(0)
    ax = anim._fig.axes[0]
    stroke_lines = ax.lines[: len(STROKES)]
    assert sum(len(ln.get_xdata()) for ln in stroke_lines) < len(OFFSETS)
    anim._draw_frame(4)
    for ln, s in zip(stroke_lines, STROKES):
        np.testing.assert_allclose(np.column_stack([ln.get_xdata(), ln.get_ydata()]), s)


def test_to_html_animation():
    html = render.to_html_animation(OFFSETS, max_frames=3, speed=10)
    assert "<script" in html and "data:image/png;base64" in html
    # nothing to fetch: the player's icon stylesheet (a CDN) is gone, its buttons are glyphs
    assert not re.search(r"https?://", html) and 'class="fa ' not in html and "\u25b6" in html
    svg = render.to_html_animation(OFFSETS, method="svg")
    assert len(svg_paths(svg)[1]) == len(STROKES)


# ---------------------------------------------------------------------------------------------------------
# matplotlib


def test_plot_draws_one_upright_line_per_stroke():
    ax = render.plot(Sample(OFFSETS, text="hi"))
    assert len(ax.lines) == len(STROKES)
    for ln, s in zip(ax.lines, STROKES):
        np.testing.assert_allclose(np.column_stack([ln.get_xdata(), ln.get_ydata()]), s)
    assert not ax.yaxis_inverted() and ax.get_aspect() == 1.0 and not ax.axison
    assert ax.get_title() == "hi"


def test_plot_stroke_colours_points_and_existing_axes():
    fig, ax = plt.subplots()
    out = render.plot(OFFSETS, ax=ax, stroke_colors=True, show_points=True, title="")
    assert out is ax
    colours = {matplotlib.colors.to_hex(ln.get_color()) for ln in ax.lines}
    assert len(colours) == len(STROKES)
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == len(OFFSETS)


def test_plot_point_colors_colour_each_segment():
    values = np.arange(len(OFFSETS), dtype=float)
    ax = render.plot(OFFSETS, point_colors=values, cmap="viridis", colorbar=True)
    assert len(ax.collections) == len(STROKES)
    first = ax.collections[0].get_colors()
    assert len(first) == len(STROKES[0]) - 1 and not np.allclose(first[0], first[-1])
    with pytest.raises(HandwritingError, match="point_colors"):
        render.plot(OFFSETS, point_colors=values[:-1])


def test_plot_grid_titles_and_spare_axes():
    samples = [Sample(OFFSETS, text=f"w{i}") for i in range(5)]
    fig = render.plot_grid(samples, ncols=3)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:5]] == [f"w{i}" for i in range(5)]
    assert not axes[5].lines and not axes[5].axison
    fig = render.plot_grid([OFFSETS, OFFSETS], texts=["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    with pytest.raises(HandwritingError, match="one text per sample"):
        render.plot_grid([OFFSETS], texts=["a", "b"])


# ---------------------------------------------------------------------------------------------------------
# lines


def test_stack_lines_lays_lines_out_top_to_bottom():
    a = from_strokes([np.array([[5.0, 0.0], [6.0, 1.0]]), np.array([[7.0, 0.0], [7.0, 1.0]])])
    b = from_strokes([np.array([[-3.0, 10.0], [-1.0, 11.0]])])
    out = render.stack_lines([a, Sample(b, text="b")], line_gap=0.5)
    assert len(out) == len(a) + len(b) and out[:, 2].sum() == 3
    strokes = to_strokes(out)
    first, second = np.vstack(strokes[:2]), strokes[2]
    assert first[:, 0].min() == pytest.approx(0) and second[:, 0].min() == pytest.approx(0)
    # line pitch = (1 + gap) * height of a line
    assert first[:, 1].min() - second[:, 1].min() == pytest.approx(1.5, abs=0.15)
    assert second[:, 1].max() < first[:, 1].min()


def test_lists_of_lines_are_accepted_everywhere():
    lines = [Sample(OFFSETS, text="one"), Sample(OFFSETS, text="two")]
    _, paths, _ = svg_paths(render.to_svg(lines))
    assert len(paths) == 2 * len(STROKES)
    img = render.render_image(lines, line_px=30)
    assert img.shape[0] > 2 * 30
    assert render.plot(lines).get_title() == "one\ntwo"


# ---------------------------------------------------------------------------------------------------------
# real data


def _bigbank_words(path, n):
    with zipfile.ZipFile(path) as z:
        name = next(m for m in z.namelist() if m.endswith(".json") and not m.startswith("__MACOSX"))
        records = json.loads(z.read(name))[:n]
    out = []
    for r in records:
        p = np.asarray(r["points"], dtype=np.float64)
        pts = np.stack([p[:, 0] * r["metadata"].get("aspectRatio", 1), -p[:, 1], 1 - p[:, 2]], axis=1)
        pts[-1, 2] = 1
        out.append(Sample(to_offsets(pts).astype(np.float32), r["metadata"]["asciiSequence"]))
    return out


def test_real_words_render_to_sensible_images(bigbank_path, tmp_path):
    words = _bigbank_words(bigbank_path, 6)
    for w in words:
        img = render.render_image(w, height=64)
        assert img.shape[0] == 64 and 0.02 < (img < 128).mean() < 0.5
        assert img.shape[1] > 64  # words are wider than tall
    path = render.save_png(words[:3], tmp_path / "lines.png", line_width=2.5)
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        assert im.size[1] > im.size[0] * 0.3
