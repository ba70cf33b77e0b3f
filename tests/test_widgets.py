"""The handwriting panel, headless: state → generation → rendering, widget callbacks, styles, cancel, smooth()."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from handwriting.datasets.jsonink import save_samples
from handwriting.errors import HandwritingError
from handwriting.layout import wrap_text
from handwriting.strokes import Sample, from_strokes
from handwriting.widgets import (
    BIAS_STEPS,
    NO_STYLE,
    Panel,
    PanelResult,
    PanelState,
    Style,
    panel,
    render_attention,
    render_state,
    smooth,
)


def wave(text: str, bias: float, seed: int) -> Sample:
    """A cheap stand-in for handwriting: one wavy stroke per word, wobblier for a lower bias."""
    rng = np.random.default_rng(seed)
    strokes, x = [], 0.0
    for word in text.split() or [text]:
        t = np.linspace(0, 1, 8 * max(len(word), 1))
        noise = rng.normal(0, 0.02 / (1 + bias), size=(len(t), 2))
        strokes.append(np.stack([x + t * 0.1 * len(word), 0.05 * np.sin(12 * t)], 1) + noise)
        x += 0.1 * len(word) + 0.08
    return Sample(from_strokes(strokes), text=text)


class Recorder:
    """A generator(text, bias, style, seed) that records its calls."""

    __name__ = "recorder"

    def __init__(self, phi: bool = False):
        self.calls: list[tuple[str, float, Style, int]] = []
        self.phi = phi

    def __call__(self, text, bias, style, seed):
        self.calls.append((text, bias, style, seed))
        s = wave(text, bias, seed)
        if self.phi:
            return s, {"phi": np.random.default_rng(seed).random((len(s), len(text)))}
        return s


def make(gen=None, **kw) -> Panel:
    kw.setdefault("debounce", 0)
    kw.setdefault("background", False)
    return Panel(generator=gen or Recorder(), **kw)


def test_bias_slider_regenerates_with_new_bias_and_new_image():
    gen = Recorder()
    p = make(gen, text="hello world", bias=0.5)
    assert gen.calls and gen.calls[-1][1] == 0.5
    before_html, before_pic = p.output.value, p.picture
    assert isinstance(before_pic, str) and before_pic.lstrip().startswith("<svg")
    p.bias.value = 3.0  # the widget callback regenerates (debounce=0, in this thread)
    assert gen.calls[-1][:2] == ("hello world", 3.0)
    assert p.picture != before_pic and p.output.value != before_html
    assert p.result.key == p.get_state().generation_key()
    assert "1 line" in p.status.value


def test_bias_slider_is_finer_near_zero():
    assert BIAS_STEPS[0] == 0 and BIAS_STEPS[-1] == 10
    steps = np.diff(BIAS_STEPS)
    assert (steps > 0).all() and steps[0] < steps[-1]
    p = make(bias=0.8)
    assert list(p.bias.options) == list(BIAS_STEPS) and p.bias.value == 0.75  # snapped to the nearest step


def test_text_seed_and_model_changes_regenerate_render_changes_do_not():
    gen = Recorder()
    p = make(gen, text="one")
    n = len(gen.calls)
    p.text.value = "two words"
    assert gen.calls[-1][0] == "two words"
    p.seed.value = 5
    assert gen.calls[-1][3] == 5
    n = len(gen.calls)
    svg = p.picture
    p.color.value = "#ff0000"
    p.stroke_width.value = 4.0
    assert len(gen.calls) == n  # only re-rendered
    assert p.picture != svg and "#ff0000" in p.picture and 'stroke-width="4"' in p.picture
    p.animate.value = True
    assert "hw-stroke" in p.picture and len(gen.calls) == n
    p.animate.value = False
    p.fmt.value = "png"
    assert isinstance(p.picture, bytes) and p.picture[:8] == b"\x89PNG\r\n\x1a\n"
    assert p.output.value.startswith('<img src="data:image/png;base64,')


def test_long_text_is_wrapped_and_generated_line_by_line():
    gen = Recorder()
    p = make(gen, text="short", max_chars=12, batch_lines=2)
    p.text.value = "the quick brown fox jumps over the lazy dog\nagain"
    texts = [c[0] for c in gen.calls[1:]]
    assert texts == wrap_text("the quick brown fox jumps over the lazy dog\nagain", 12)
    assert all(len(t) <= 12 for t in texts) and texts[-1] == "again"
    assert [c[3] for c in gen.calls[1:]] == list(range(len(texts)))  # seed + line index
    assert len(p.result.lines) == len(texts) and f"{len(texts)} lines" in p.status.value


def test_the_panel_wraps_like_write_but_shows_no_blank_lines():
    gen = Recorder()
    p = make(gen, text="a b c d\n\n  unbreakable  ", max_chars=4)
    assert wrap_text("a b c d\n\n  unbreakable  ", 4) == ["a b", "c d", "", "unbr", "eaka", "ble"]  # as write()
    assert [s.text for s in p.result.lines] == ["a b", "c d", "unbr", "eaka", "ble"]  # no line wider than 4
    with pytest.raises(HandwritingError):
        wrap_text("x", 0)


def test_style_picker_lists_saved_samples_and_primes_with_them(tmp_path):
    mine = [wave("hello", 1.0, 1).replace(writer="ada"), wave("cursive", 1.0, 2)]
    path = save_samples(tmp_path / "mine.json", mine, writer="ada")
    gen = Recorder()
    p = make(gen, styles=path)
    labels = [s for s in p.style.options if s.startswith("mine.json")]
    assert labels == ["mine.json: 'hello' (#0, ada)", "mine.json: 'cursive' (#1, ada)"]
    assert NO_STYLE.label in p.style.options and "synthetic: neat" in p.style.options
    p.style.value = labels[1]
    style = gen.calls[-1][2]
    assert style.kind == "file" and style.prime.text == "cursive"
    np.testing.assert_array_equal(style.prime.offsets, mine[1].offsets)


def test_load_styles_from_the_panel_box(tmp_path):
    path = save_samples(tmp_path / "more.json", [wave("abc", 0.5, 3)], writer="bo")
    p = make()
    p.samples_path.value = str(path)
    p.load_button.click()
    assert p.style.value == "more.json: 'abc' (#0, bo)" and "added 1 style from" in p.status.value
    p.samples_path.value = str(tmp_path / "missing.json")
    p.load_button.click()
    assert p.status.value.startswith("error:") and "missing.json" in p.status.value


def test_styles_from_samples_and_dict():
    s = wave("hi", 0.0, 0)
    p = make(styles={"my best": s, "slanted": "hasty"})
    assert "my best" in p.styles and "slanted" in p.styles
    p.style.value = "slanted"
    assert p._styles["slanted"].writer == "hasty"
    gen = Recorder()
    make(gen, styles=[s], style="mine: 'hi' (#0)")  # start in that style
    assert gen.calls[0][2].prime is s
    with pytest.raises(HandwritingError):
        make(styles=42)
    with pytest.raises(HandwritingError, match="not in the style picker"):
        make(style="nobody")


def test_show_attention_displays_phi_heat_map():
    gen = Recorder(phi=True)
    p = make(gen)
    assert p.attention.layout.display == "none"
    p.show_attention.value = True
    assert p.attention.layout.display is None
    assert p.attention.value[:8] == b"\x89PNG\r\n\x1a\n"
    p.show_attention.value = False
    assert p.attention.layout.display == "none"


def test_attention_missing_is_reported():
    p = make(Recorder(phi=False))
    p.show_attention.value = True
    assert "no attention window" in p.status.value and p.attention.layout.display == "none"


def test_render_state_is_pure():
    lines = [wave("ab cd", 1.0, 0), wave("ef", 1.0, 1)]
    result = PanelResult(lines)
    svg = render_state(PanelState(stroke_width=3, color="navy"), result)
    assert svg.startswith("<svg") and svg.count("<path") == 3 and "#000080" in svg
    assert render_state(PanelState(stroke_width=3, color="navy"), result) == svg
    assert "hw-stroke" in render_state(PanelState(animate=True, fmt="png"), result)  # an animation is SVG
    png = render_state(PanelState(fmt="png"), result)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(HandwritingError):
        render_state(PanelState(fmt="bmp"), result)
    with pytest.raises(HandwritingError):
        render_state(PanelState(), PanelResult([]))
    assert render_attention(np.eye(5), "hello")[:4] == b"\x89PNG"


def test_errors_show_in_the_status_label():
    def broken(text, bias, style, seed):
        raise HandwritingError(f"cannot write {text!r}")

    p = Panel(generator=broken, debounce=0, background=False, autostart=False)
    p.request(force=True)  # what a widget change does: the error is shown, not raised
    assert p.status.value == "error: cannot write 'hello world'" and p.result is None
    with pytest.raises(HandwritingError):
        p.regenerate()
    p.text.value = ""
    assert "nothing to write" in p.status.value


def test_debounced_background_generation():
    gen = Recorder()
    p = Panel(generator=gen, debounce=0.05, background=True)
    p.wait(10)
    p.bias.value = 1.5
    p.bias.value = 2.0  # within the debounce: only the last value is generated
    assert p.wait(10) is not None
    assert p.result.key[1] == 2.0
    assert [c[1] for c in gen.calls] == [0.5, 2.0]  # the default bias, then the last value


def test_cancel_stops_between_lines():
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow(text, bias, style, seed):
        calls.append(text)
        started.set()
        release.wait(10)
        return wave(text, bias, seed)

    p = Panel(generator=slow, debounce=0, background=True, autostart=False, batch_lines=1, max_chars=5,
              text="aaaa bbbb cccc dddd")  # fmt: skip
    p.request(force=True)
    assert started.wait(10)
    assert not p.cancel_button.disabled and p.status.value.startswith("writing")
    p.cancel_button.click()
    release.set()
    p.wait(10)
    assert calls == ["aaaa"] and p.status.value == "cancelled" and p.result is None


def test_a_newer_request_supersedes_a_running_one():
    gate = threading.Event()

    def gen(text, bias, style, seed):
        if text == "first":
            gate.wait(10)
        return wave(text, bias, seed)

    p = Panel(generator=gen, debounce=0, background=True, autostart=False, text="first")
    p.request(force=True)
    old = p._job
    p.text.value = "second"  # starts a new job and cancels the old one
    p.wait(10)
    gate.set()
    old.thread.join(10)
    assert p.result.lines[0].text == "second"


def test_synthetic_writer_is_the_fallback_model():
    p = panel(debounce=0, background=False, autostart=False, text="hi")
    assert "synthetic writer" in p.model.options
    p.model.value = "synthetic writer"
    p.style.value = "synthetic: hasty"
    first = p.regenerate()
    p.bias.value = 5.0
    assert p.result is not first and p.result.lines[0].writer == "hasty"
    a, b = first.lines[0].offsets, p.result.lines[0].offsets
    assert a.shape != b.shape or not np.allclose(a, b)


def test_smooth_primes_with_the_sample_at_each_bias():
    gen = Recorder()
    mine = wave("hello", 0.0, 4).replace(writer="ada")
    out = smooth(mine, biases=(0.5, 1, 2), seed=3, generator=gen)
    assert len(out) == 3 and all(isinstance(s, Sample) for s in out)
    assert [c[1] for c in gen.calls] == [0.5, 1.0, 2.0]
    assert all(c[0] == "hello" and c[2].prime is mine and c[3] == 3 for c in gen.calls)
    with pytest.raises(HandwritingError):
        smooth(mine.replace(text=" "), generator=gen)


def test_panel_and_smooth_with_a_real_synthesis_network():
    import torch
    from handwriting.datasets.torch_data import Alphabet
    from handwriting.models.graves import SynthesisNetwork
    from handwriting.strokes import Normalizer

    torch.manual_seed(0)
    alphabet = Alphabet("abcdefghijklmnopqrstuvwxyz ")
    m = SynthesisNetwork(hidden=8, layers=1, mixtures=2, window_mixtures=2, alphabet_size=len(alphabet))
    m.alphabet, m.normalizer = alphabet, Normalizer((0.0, 0.0), (0.02, 0.02))
    p = Panel(m, debounce=0, background=False, text="hi yo")
    assert p.model.options == ("SynthesisNetwork",) and p.result.lines[0].text == "hi yo"
    p.show_attention.value = True  # generates again, asking write() for the internals
    phi = p.result.phi[0]
    assert phi.shape == (len(p.result.lines[0]), len("hi yo")) and p.attention.layout.display is None
    mine = wave("hey", 0.0, 0)
    out = smooth(mine, m, biases=(1, 3), seed=0)
    assert len(out) == 2 and [s.bias for s in out] == [1.0, 3.0] and out[0].text == "hey"


def test_model_picker_lists_writers_only_with_the_default_model_first(monkeypatch):
    from handwriting import pretrained, widgets

    found = [
        {"name": "cursive-transformer-bigbank", "class": "CursiveTransformer"},
        {"name": "graves-prediction-bigbank", "class": "PredictionNetwork"},
        {"name": pretrained.DEFAULT_MODEL, "class": "SynthesisNetwork"},
        {"name": "recognizer-bigbank", "class": "Recognizer"},
    ]
    monkeypatch.setattr(pretrained, "list_pretrained", lambda: found)
    assert widgets._pretrained_names() == [pretrained.DEFAULT_MODEL, "cursive-transformer-bigbank"]


def test_a_transformer_writes_long_lines_in_pieces_that_fit_its_context(monkeypatch):
    """The panel's 40-character lines would overrun the shipped cursive transformer's 600-token context:
    such a model writes each line in pieces that fit (see generate.default_line_chars), joined into the line."""
    from handwriting import widgets
    from handwriting.generate import default_line_chars, line_pieces
    from handwriting.pretrained import load_pretrained

    m = load_pretrained("cursive-transformer-bigbank")
    limit = default_line_chars(m)
    assert 8 <= limit < 40
    asked = []
    real = widgets._generate_batch
    monkeypatch.setattr(widgets, "_generate_batch", lambda b, lines, *a: asked.extend(lines) or real(b, lines, *a))
    p = make(m, text="short", max_chars=40)
    asked.clear()
    p.text.value = "the quick brown fox jumps"
    pieces = line_pieces("the quick brown fox jumps", limit)[0]
    assert asked == pieces and len(pieces) > 1 and all(len(x) <= limit for x in pieces)
    assert [ln.text for ln in p.result.lines] == ["the quick brown fox jumps"]  # one line on the page
    assert int(p.result.lines[0].offsets[:, 2].sum()) >= len(pieces)  # the pen lifts at least between pieces


def test_best_of_n_is_a_panel_option_passed_to_write(monkeypatch):
    import handwriting.widgets as widgets

    seen = []
    real = widgets._write_fn()

    def spy(*args, **kw):
        seen.append(kw.get("candidates"))
        return real(*args, **kw)

    monkeypatch.setattr(widgets, "_write_fn", lambda: spy)
    p = Panel(model="graves-synthesis-tiny", text="ab", debounce=0, background=False)
    assert seen[-1] == 1
    key = p.result.key
    p.candidates.value = 4  # regenerates
    assert seen[-1] == 4 and p.result.key != key and p.result.key[-1] == 4
