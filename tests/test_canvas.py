"""The drawing canvas, headless: synthetic pointer sequences → strokes → samples → JSON and back; the live
next-point density of a prediction network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handwriting.canvas import DEFAULT_WORDS, HandwritingCanvas, NextPointDensity
from handwriting.datasets.jsonink import load_samples
from handwriting.errors import DataError, HandwritingError
from handwriting.strokes import Sample, to_strokes


def draw(c: HandwritingCanvas, strokes) -> None:
    """Drive the pointer handlers with one down / moves / up per stroke."""
    for pts in strokes:
        c._pointer_down(*pts[0])
        for p in pts[1:-1]:
            c._pointer_move(*p)
        c._pointer_up(*pts[-1])


A = [(10, 130), (20, 120), (30, 110), (40, 100)]
DOT = [(50, 90)]


def test_pointer_sequence_gives_strokes_and_a_flipped_sample():
    c = HandwritingCanvas(["hi"], writer="ada", build=False)
    draw(c, [A, DOT])
    assert [s.tolist() for s in c.strokes] == [[list(map(float, p)) for p in A], [[50.0, 90.0]]]
    s = c.current_sample()
    assert isinstance(s, Sample) and s.text == "hi" and s.writer == "ada"
    u, base = c.units_per_px, c.baseline_px
    expected = [np.array([[x * u, (base - y) * u] for x, y in st]) for st in (A, DOT)]
    got = to_strokes(s.offsets)
    assert len(got) == 2
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-6)
    assert got[0][-1, 1] > got[0][0, 1]  # the pen went up the canvas: y grows upwards in the sample
    np.testing.assert_array_equal(s.offsets[:, 2], [0, 0, 0, 1, 1])


def test_small_moves_are_dropped_and_moves_without_a_pen_are_ignored():
    c = HandwritingCanvas(build=False, min_distance=2.0)
    c._pointer_move(5, 5)  # hovering: nothing
    c._pointer_up(5, 5)
    assert c.strokes == [] and c.current_sample() is None
    c._pointer_down(0, 0)
    c._pointer_move(1, 0)  # shorter than min_distance
    c._pointer_move(3, 0)
    c._pointer_up(3.5, 0)  # the up point is too close as well
    assert c.strokes[0].tolist() == [[0.0, 0.0], [3.0, 0.0]]
    c._pointer_down(10, 10)
    c._pointer_out(12, 10)  # leaving the canvas ends the stroke
    assert len(c.strokes) == 2 and c._current is None


def test_undo_and_clear():
    c = HandwritingCanvas(build=False)
    draw(c, [A, DOT, [(60, 60), (70, 70)]])
    c.undo()
    assert len(c.strokes) == 2
    c._pointer_down(1, 1)
    c.undo()  # removes the stroke being drawn
    assert len(c.strokes) == 2 and c._current is None
    c.clear()
    assert c.strokes == [] and c.current_sample() is None
    c.undo()  # nothing left: no error
    assert len(c.offsets()) == 0


def test_next_saves_json_and_load_samples_round_trips(tmp_path):
    path = tmp_path / "ada.json"
    c = HandwritingCanvas(["hello", "world", "again"], writer="ada", path=path)
    draw(c, [A, DOT])
    first = c.next()
    assert c.prompt.value == "world" and "world" in c.banner.value and path.is_file()
    draw(c, [[(100, 130), (120, 125), (140, 135)]])
    c.prompt.value = "wrld"  # the user corrects the prompt to what they wrote
    second = c.next()
    assert [s.text for s in c.samples] == ["hello", "wrld"] and c.strokes == []
    doc = json.loads(path.read_text())
    assert doc["format"] == "handwriting-samples" and doc["writer"] == "ada"
    assert [e["text"] for e in doc["samples"]] == ["hello", "wrld"]
    assert len(doc["samples"][0]["strokes"]) == 2 and len(doc["samples"][1]["strokes"]) == 1
    loaded = load_samples(path)
    for a, b in zip(loaded, [first, second]):
        assert a.text == b.text and a.writer == "ada"
        np.testing.assert_array_equal(a.offsets, b.offsets)

    again = HandwritingCanvas(build=False)
    got = again.load(path)
    assert again.writer == "ada" and [s.text for s in again.samples] == ["hello", "wrld"] and len(got) == 2
    again.show(got[0])  # back onto the canvas: the same pixels
    for s, e in zip(again.strokes, [A, DOT]):
        np.testing.assert_allclose(s, np.array(e, float), atol=1e-6)
    assert again.text == "hello"


def test_save_load_errors_and_skip(tmp_path):
    c = HandwritingCanvas(["a", "b"], build=False)
    with pytest.raises(HandwritingError, match="nothing drawn"):
        c.accept()
    with pytest.raises(HandwritingError, match="no samples"):
        c.save(tmp_path / "x.json")
    draw(c, [A])
    c.skip()
    assert c.prompt_text == "b" and c.strokes == []
    draw(c, [A])
    c.text = "  "
    with pytest.raises(HandwritingError, match="no text"):
        c.accept()
    c.text = "b"
    c.accept()
    with pytest.raises(HandwritingError, match="no file"):
        c.save()
    p = c.save(tmp_path / "sub" / "b.json")
    assert p.is_file() and c.path == p
    with pytest.raises(DataError):
        c.load(tmp_path / "missing.json")


def test_buttons_and_ipycanvas_events_reach_the_handlers(tmp_path):
    c = HandwritingCanvas(["one", "two"], writer="bo")
    top = c.canvas._canvases[-1]  # ipycanvas delivers events to the top layer
    send = lambda event, **kw: top._handle_frontend_event(None, {"event": event, **kw}, None)  # noqa: E731
    send("mouse_down", x=10, y=100)
    send("mouse_move", x=20, y=90)
    send("mouse_up", x=30, y=80)
    send("touch_start", touches=[{"x": 50, "y": 50}])
    send("touch_move", touches=[{"x": 60, "y": 60}])
    send("touch_end", touches=[])
    assert [s.tolist() for s in c.strokes] == [[[10, 100], [20, 90], [30, 80]], [[50, 50], [60, 60]]]
    c.buttons["Undo"].click()
    assert len(c.strokes) == 1
    c.path_box.value = str(tmp_path / "bo.json")
    c.buttons["Next"].click()
    assert (tmp_path / "bo.json").is_file() and "saved 1 samples" in c.status.value
    c.buttons["Next"].click()  # nothing drawn: the error is shown, not raised
    assert c.status.value.startswith("error: nothing drawn")
    c.buttons["Load"].click()
    assert len(c.samples) == 2 and "loaded 1 samples" in c.status.value


def test_word_banks(tmp_path):
    assert HandwritingCanvas(build=False).prompt_text == DEFAULT_WORDS[0]
    f = tmp_path / "words.txt"
    f.write_text("alpha\n\n beta \n", encoding="utf-8")
    c = HandwritingCanvas(f, build=False)
    assert c.words == ["alpha", "beta"]
    c.skip()
    c.skip()
    assert c.prompt_text == "alpha"  # the bank cycles
    shuffled = HandwritingCanvas(list("abcdefgh"), shuffle=True, seed=1, build=False).words
    assert sorted(shuffled) == list("abcdefgh") and shuffled != list("abcdefgh")
    with pytest.raises(DataError, match="no prompts"):
        HandwritingCanvas([" "], build=False)
    with pytest.raises(DataError, match="cannot read"):
        HandwritingCanvas(tmp_path / "nope.txt", build=False)


def test_prediction_hook_receives_the_strokes_so_far():
    seen = []

    def predictor(offsets, xs, ys):
        seen.append(np.array(offsets))
        X, Y = np.meshgrid(xs, ys)
        return np.exp(-((X - 0.3) ** 2 + Y**2) / 0.01)

    c = HandwritingCanvas(predictor=predictor, predict_every=2, prediction_cell=10, width=200, height=100)
    draw(c, [A])
    assert len(seen) == 2  # once after 2 recorded moves while drawing, once on pen up
    assert len(seen[0]) == 3 and seen[0][-1, 2] == 0  # pen still down
    assert len(seen[-1]) == len(A) and seen[-1][-1, 2] == 1
    assert c.prediction.shape == (10, 20)
    xs, ys, d = c.prediction_grid()
    assert len(xs) == 20 and len(ys) == 10 and xs[0] == 5 and ys[0] == 5
    c.clear()
    assert c.prediction is None


def test_next_point_density_of_a_prediction_network():
    import torch
    from handwriting.models.graves import PredictionNetwork
    from handwriting.models.mdn import MixtureParams
    from handwriting.strokes import Normalizer

    torch.manual_seed(0)
    net = PredictionNetwork(hidden=8, layers=1, mixtures=2).eval()
    norm = Normalizer((0.001, -0.002), (0.01, 0.02))
    dens = NextPointDensity(net, norm)
    c = HandwritingCanvas(build=False)
    draw(c, [A])
    off = c.offsets()
    last = c.to_data(np.array([A[-1]], float))[0]
    h = 0.002
    xs = last[0] + np.arange(-0.15, 0.15, h)
    ys = last[1] + np.arange(-0.3, 0.3, h)
    grid = dens(off, xs, ys)
    assert grid.shape == (len(ys), len(xs)) and (grid >= 0).all()
    assert abs(grid.sum() * h * h - 1.0) < 0.02  # a probability density over the plane
    assert 0.0 <= dens.last_eos_prob <= 1.0
    # its mean is where the mixture says: last point + denormalised Σ π μ
    p: MixtureParams = dens.params(off)
    mean = (p.pi[:, None] * p.mu).sum(0).numpy() * np.array(norm.std) + np.array(norm.mean)
    X, Y = np.meshgrid(xs, ys)
    w = grid / grid.sum()
    np.testing.assert_allclose([(w * X).sum(), (w * Y).sum()], last + mean, atol=2e-3)
    # incremental evaluation (the state is kept while the drawing grows) = a fresh run over everything
    inc = NextPointDensity(net, norm)
    for n in range(1, len(off) + 1):
        part = off[:n].copy()
        part[-1, 2] = 0.0 if n < len(off) else 1.0  # pen down until the last point
        got, want = inc.params(part), NextPointDensity(net, norm).params(part)
        torch.testing.assert_close(got.mu, want.mu, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got.pi_logits, want.pi_logits, rtol=1e-4, atol=1e-5)
    assert inc._cache[0] == len(off)
    inc.params(off[:2])  # the drawing shrank (undo): starts again
    assert inc._cache[0] == 2
    # wired into the canvas: a module becomes a NextPointDensity (normaliser from the model)
    net.normalizer = norm
    c2 = HandwritingCanvas(predictor=net, predict_every=0, width=120, height=80, prediction_cell=8)
    draw(c2, [A])
    assert isinstance(c2.predictor, NextPointDensity) and c2.prediction.shape == (10, 15)
