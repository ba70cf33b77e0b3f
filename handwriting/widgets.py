"""Interactive notebook tools: the handwriting panel, the drawing canvas and :func:`smooth`.

The panel
---------
:class:`Panel` (or :func:`panel`) shows a text box, a bias slider, style and model pickers, a seed, the pen's
width and colour, "animate" and "show attention" switches, and the handwriting itself::

    from handwriting.widgets import panel
    panel()                                   # pretrained models if shipped, else the synthetic writer
    panel(model)                              # a model you trained (an nn.Module) or a pretrained name
    panel({"graves": m1, "transformer": m2}, styles="my_samples.json")
    panel(style_files="mine.style")           # your hand (``handwriting style fit``) in the model picker

Every change regenerates the writing after a short pause (``debounce`` seconds), in a background thread, so a
long text never freezes the kernel: a label shows the progress (line by line) and **Cancel** stops the job
between lines.  Changes that only affect the drawing (pen width, colour, animation, SVG/PNG) re-render the
last result without generating again.

The logic is separate from the widgets and testable without a browser: :class:`PanelState` holds every
setting, :func:`render_state` turns a state and a generated :class:`PanelResult` into SVG text or PNG bytes,
and :meth:`Panel.regenerate` generates synchronously.  Any callable ``generator(text, bias, style, seed) ->
Sample`` can stand in for a model (``style`` is a :class:`Style`; its ``sample`` is the priming sample or
``None``); it may also return ``(sample, internals)`` with ``internals["phi"]`` the attention window.

Styles
------
A :class:`Style` (defined in :mod:`handwriting.styles`, re-exported here) is a way to prime the model (Graves
§5.5: continue a real sample, then write the new text in its hand): none (the model's own average hand), a
synthetic writer (:data:`~handwriting.datasets.synthetic.WRITERS`), a bigbank word (``bigbank=12`` lists the
first 12), or your own samples saved by the drawing canvas in the project's JSON format
(``styles="my_samples.json"``, or the panel's *samples file* box).

A **style file** (:mod:`handwriting.style_file`, made by ``handwriting style fit``) is not a prime but a tuned
model: ``style_files=...`` (or a ``.style`` path in the *samples file* box) adds its base model with the style
put in to the model picker, labelled ``base+name``, and a style picked there can still prime it.

The bias slider runs over :data:`BIAS_STEPS` (finer near 0, where most of the change happens): 0 samples the
model's distribution as it is, larger values sharpen it (Graves §5.4; the cursive transformer trims its unlikely
tokens instead, ``bias_min_p``) and the writing becomes tidier.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import HandwritingError
from .layout import assemble_lines, line_pieces, wrap_text
from .strokes import Sample
from .styles import (  # noqa: F401  (the style picker's entries: defined there, importable from here too)
    NO_STYLE,
    PRIME_TEXT as PRIME_TEXT,
    Style,
    _styles_from,
    bigbank_styles,
    file_styles,
    sample_styles,
    synthetic_styles,
)

__all__ = [
    "BIAS_STEPS",
    "PanelState",
    "PanelResult",
    "Cancelled",
    "render_state",
    "render_attention",
    "Panel",
    "panel",
    "smooth",
    "HandwritingCanvas",  # noqa: F822 (a lazy attribute: see __getattr__)
]

#: the values of the bias slider: fine steps near 0, coarse ones above 2.
BIAS_STEPS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)

SYNTHETIC_MODEL = "synthetic writer"


def __getattr__(name: str):  # the canvas lives in its own module; import it on first use
    if name == "HandwritingCanvas":
        from .canvas import HandwritingCanvas

        return HandwritingCanvas
    raise AttributeError(f"module 'handwriting.widgets' has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------------------
# the pure part: state, text wrapping, rendering


@dataclass
class PanelState:
    """Every setting of the panel (what the widgets show)."""

    text: str = "hello world"
    bias: float = 0.5
    style: str = NO_STYLE.label
    model: str = ""
    seed: int = 0
    stroke_width: float = 2.0
    color: str = "#000000"
    animate: bool = False
    show_attention: bool = False
    fmt: str = "svg"  # "svg" or "png" (an animation is always SVG)
    max_chars: int = 40  # longer lines are wrapped
    candidates: int = 1  # best of N (a model only): each piece written N times, the best-read one kept

    def generation_key(self) -> tuple:
        """The settings that change the generated writing (the rest only change the drawing)."""
        return (self.text, float(self.bias), self.style, self.model, int(self.seed), int(self.max_chars),
                int(self.candidates))


@dataclass
class PanelResult:
    """Generated lines (one :class:`Sample` each) and, when the model gave it, each line's attention φ ``(T, U)``."""

    lines: list[Sample]
    phi: list[np.ndarray | None] = field(default_factory=list)
    phi_text: list[str] = field(default_factory=list)  # the text each φ runs over (prime + line when primed)
    key: tuple = ()
    seconds: float = 0.0

    @property
    def has_attention(self) -> bool:
        return any(p is not None for p in self.phi)


class Cancelled(HandwritingError):
    """Generation was cancelled (the Cancel button, or a newer request)."""


def render_state(state: PanelState, result: PanelResult) -> str | bytes:
    """The picture for ``state``: SVG text (``fmt="svg"`` or ``animate``; animated strokes with ``animate``)
    or PNG bytes (``fmt="png"``), with the state's pen width and colour; several lines are stacked."""
    from . import render

    if not result.lines:
        raise HandwritingError("nothing to draw: type some text")
    data: Any = result.lines if len(result.lines) > 1 else result.lines[0]
    if state.animate or state.fmt == "svg":
        return render.to_svg(
            data, stroke_width=state.stroke_width, color=state.color, animate=state.animate, xml_declaration=False,
            background="white",
        )  # fmt: skip
    if state.fmt == "png":
        return render.png_bytes(data, line_width=state.stroke_width, color=state.color)
    raise HandwritingError(f"fmt must be 'svg' or 'png', got {state.fmt!r}")


def render_attention(phi: np.ndarray, text: str = "", width: float = 6.0) -> bytes:
    """A PNG heat map of the attention window φ ``(T, U)``: time (pen points) across, characters up the side
    (Graves' figure 13, top)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    phi = np.asarray(phi, dtype=np.float32)
    if phi.ndim != 2 or phi.size == 0:
        raise HandwritingError(f"render_attention: phi must be a (T, U) array, got shape {phi.shape}")
    T, U = phi.shape
    fig = Figure(figsize=(width, min(0.6 + 0.18 * U, 6.0)), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.imshow(phi.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("pen point")
    chars = list(text)[:U] if text else []
    if chars and len(chars) == U and U <= 60:
        ax.set_yticks(range(U))
        ax.set_yticklabels(["␣" if c == " " else c for c in chars], fontsize=7)
    else:
        ax.set_ylabel("character")
    ax.set_title("attention window φ", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _as_html(picture: str | bytes) -> str:
    if isinstance(picture, bytes):
        return f'<img src="data:image/png;base64,{base64.b64encode(picture).decode()}" alt="handwriting"/>'
    return picture


# ----------------------------------------------------------------------------------------------------------
# generation back-ends: a user's generator, a model through write(), the synthetic writer


def _to_numpy(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x, dtype=np.float32)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    return a if a.ndim == 2 and a.size else None


def _phi_of(internals: Any) -> np.ndarray | None:
    if internals is None:
        return None
    if isinstance(internals, dict):
        return _to_numpy(internals.get("phi"))
    return _to_numpy(getattr(internals, "phi", None))


def _unpack(result: Any, where: str) -> tuple[Sample, np.ndarray | None]:
    """A generator's return value → (sample, φ or None): a Sample, or (Sample, internals) with internals a
    dict (or object) holding ``phi``."""
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], Sample):
        return result[0], _phi_of(result[1])
    if isinstance(result, (tuple, list)) and len(result) == 1:
        return _unpack(result[0], where)
    if isinstance(result, Sample):
        internals = getattr(result, "internals", None)
        if isinstance(internals, list):  # a Written from write(): one dict per line
            internals = internals[0] if internals else None
        return result, _phi_of(internals)
    raise HandwritingError(f"{where}: expected a handwriting Sample, got {type(result).__name__}")


def _tidy_writer(name: str, bias: float):
    """A synthetic writer whose variation shrinks as the bias grows (a stand-in for a model's bias)."""
    from .datasets.synthetic import WRITERS

    st = WRITERS[name]
    f = 1.0 / (1.0 + max(float(bias), 0.0))

    def shrink(r):
        return (r[0] * f, r[1] * f)

    return st.replace(
        wobble=shrink(st.wobble), baseline_drift=shrink(st.baseline_drift), size_jitter=st.size_jitter * f,
        noise=st.noise * f, tilt=st.tilt * f,
    )  # fmt: skip


def synthetic_generator(text: str, bias: float, style: Style | None, seed: int) -> Sample:
    """The synthetic writer as a generator: the style's writer (or ``"neat"``), tidier as ``bias`` grows.

    No model is involved: it makes the panel (and the page command) work before any model is trained."""
    from .datasets.synthetic import WRITERS, synthesize

    name = style.writer if style is not None and style.writer in WRITERS else "neat"
    return synthesize([text], writer=_tidy_writer(name, bias), seed=seed)[0]


class _Models:
    """The model picker's entries: label → a generator callable, an nn.Module, or a pretrained name/path."""

    def __init__(self, model: Any, generator: Callable | None):
        entries: dict[str, Any] = {}
        if generator is not None:
            entries[getattr(generator, "__name__", "generator")] = generator
        if isinstance(model, dict):
            for k, v in model.items():
                entries[str(k)] = v
        elif isinstance(model, (str, os.PathLike)):
            entries[os.fspath(model)] = model
        elif model is not None:
            entries[getattr(model, "pretrained_name", None) or type(model).__name__] = model
        if not entries:
            for name in _pretrained_names():
                entries[name] = name
        if model is None and generator is None:
            entries[SYNTHETIC_MODEL] = synthetic_generator
        self.entries = entries
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return list(self.entries)

    def add_style_file(self, path: str | os.PathLike) -> str:
        """Add ``path``'s style applied to its base model (a :class:`~handwriting.style_file.StyleError` if the
        file is bad); returns its label."""
        from .style_file import load_style

        with self._lock:
            styled = load_style(path)
        self.entries[styled.pretrained_name] = styled
        return styled.pretrained_name

    def resolve(self, label: str) -> Any:
        if label not in self.entries:
            raise HandwritingError(f"unknown model {label!r}; choose one of {', '.join(self.entries)}")
        value = self.entries[label]
        if not isinstance(value, (str, os.PathLike)):
            return value
        with self._lock:  # resolve_model caches loaded models
            return _resolve_model(value)


def _pretrained_names() -> list[str]:
    """The installed pretrained models that can write text, the default model (what ``write()`` uses) first."""
    from .pretrained import DEFAULT_MODEL, list_pretrained

    try:
        found = list_pretrained()
    except (HandwritingError, OSError):
        return []
    out = []
    for m in found:  # dicts with a name (or plain names)
        name = m.get("name") if isinstance(m, dict) else m
        if isinstance(m, dict) and m.get("class") in _NOT_WRITERS:
            continue  # it cannot write text: no use in the model picker
        if name:
            out.append(str(name))
    return sorted(out, key=lambda n: n != DEFAULT_MODEL)  # stable: the picker starts on the default model


#: pretrained model classes that write no text (the unconditional prediction network, the recognizer).
_NOT_WRITERS = frozenset({"PredictionNetwork", "Recognizer"})


def _resolve_model(model: Any) -> Any:
    from .generate import resolve_model

    return resolve_model(model)


def _write_fn() -> Callable:
    from .generate import write

    return write


def _is_module(x: Any) -> bool:
    """Whether ``x`` is a torch module (without importing torch: a module implies torch is loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def _generate_batch(
    backend: Any, lines: Sequence[str], bias: float, style: Style, seed: int, internals: bool, candidates: int = 1
) -> list[tuple[Sample, np.ndarray | None, str]]:
    """Lines → ``(sample, φ or None, the text φ runs over)`` each, with a generator callable (one call per
    line, seeds ``seed, seed + 1, ...``) or a model (one batched :func:`handwriting.generate.write` call)."""
    if callable(backend) and not _is_module(backend):
        out = []
        for i, line in enumerate(lines):
            s, phi = _unpack(backend(line, bias, style, seed + i), "generator")
            out.append((s, phi, line))
        return out
    write = _write_fn()
    w = write(
        "\n".join(lines), model=backend, bias=float(bias), prime=style.prime, seed=int(seed),
        return_internals=internals, max_line_chars=max(len(ln) for ln in lines), candidates=int(candidates),
    )  # fmt: skip
    details = w.internals or [None] * len(w.lines)
    out = []
    for s, d in zip(w.lines, details):
        label = (d.get("full_text") or d.get("text") or s.text) if isinstance(d, dict) else s.text
        out.append((s, _phi_of(d), label))
    return out


# ----------------------------------------------------------------------------------------------------------
# the panel


class _Job:
    def __init__(self, key: tuple):
        self.key = key
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None


class Panel:
    """An interactive panel that writes text in handwriting (see the module docstring).

    model: ``None`` (the shipped pretrained models, else the synthetic writer), a model (``nn.Module``), a
        pretrained name or checkpoint path, or a dict label → any of those.
    styles: extra styles — a JSON samples file, a list of Samples, or a dict label → Sample.
    generator: a callable ``generator(text, bias, style, seed) -> Sample`` to use instead of a model.
    style: the label of the style to start with (default: no priming); see :attr:`styles`.
    bigbank: list the first ``bigbank`` words of bigbank as styles (``True``: 12; needs the data locally;
        reading the file takes a few seconds).
    debounce: seconds to wait after a change before generating; ``0`` generates at once.
    background: generate in a background thread (``False``: in the caller's thread — for tests and scripts).

    Attributes: the widgets (``text``, ``bias``, ``style``, ``model``, ``seed``, ``stroke_width``, ``color``,
    ``animate``, ``show_attention``, ``fmt``, ``status``, ``cancel_button``, ``output``, ``attention``) and
    ``widget`` (the whole panel; a Panel also displays itself).  ``result`` is the last :class:`PanelResult`
    and ``picture`` its rendering (SVG text or PNG bytes).
    """

    def __init__(
        self,
        model: Any = None,
        styles: Any = None,
        *,
        generator: Callable | None = None,
        text: str = "hello world",
        bias: float = 0.5,
        seed: int = 0,
        style: str | None = None,
        style_files: str | os.PathLike | Sequence[str | os.PathLike] = (),
        bigbank: int | bool = False,
        max_chars: int = 40,
        batch_lines: int = 4,
        debounce: float = 0.3,
        background: bool = True,
        fmt: str = "svg",
        autostart: bool = True,
    ):
        import ipywidgets as W

        self._models = _Models(model, generator)
        for path in [style_files] if isinstance(style_files, (str, os.PathLike)) else style_files:
            self._models.add_style_file(path)
        self._styles: dict[str, Style] = {}
        for st in [NO_STYLE, *synthetic_styles()]:
            self._styles[st.label] = st
        if bigbank:
            for st in bigbank_styles(12 if bigbank is True else int(bigbank)):
                self._styles[st.label] = st
        extra = _styles_from(styles)
        for st in extra:
            self._styles[st.label] = st
        if style is not None and style not in self._styles:
            raise HandwritingError(f"style {style!r} is not in the style picker; choose one of {', '.join(self._styles)}")
        self.debounce = float(debounce)
        self.background = bool(background)
        self.batch_lines = max(1, int(batch_lines))
        self.max_chars = int(max_chars)
        self.result: PanelResult | None = None
        self.picture: str | bytes | None = None
        self.error: str | None = None
        self._job: _Job | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()

        bias = min(BIAS_STEPS, key=lambda b: abs(b - float(bias)))
        lay = W.Layout
        self.text = W.Textarea(value=text, placeholder="type something", layout=lay(width="100%", height="4em"))
        self.bias = W.SelectionSlider(
            options=list(BIAS_STEPS), value=bias, description="bias", continuous_update=False,
            layout=lay(width="360px"),
        )  # fmt: skip
        self.seed = W.BoundedIntText(value=int(seed), min=0, max=2**31 - 1, description="seed", layout=lay(width="160px"))
        self.model = W.Dropdown(options=self._models.labels, description="model", layout=lay(width="320px"))
        self.candidates = W.Dropdown(options=[("plain", 1), ("best of 4", 4), ("best of 8", 8)], value=1,
                                     description="decoding", layout=lay(width="220px"),
                                     tooltip="best of N: write N versions at once, keep the one the recognizer reads best")
        self.style = W.Dropdown(options=list(self._styles), value=style or NO_STYLE.label, description="style",
                                layout=lay(width="420px"))
        self.samples_path = W.Text(placeholder="my_samples.json or mine.style", description="samples",
                                   layout=lay(width="300px"))
        self.load_button = W.Button(description="load styles", tooltip="list the samples of a JSON file as styles, "
                                    "or add a style file to the model picker")
        self.stroke_width = W.FloatSlider(value=2.0, min=0.5, max=8.0, step=0.5, description="pen",
                                          continuous_update=False, layout=lay(width="260px"))
        self.color = W.ColorPicker(value="#000000", concise=True, description="colour", layout=lay(width="160px"))
        self.animate = W.Checkbox(value=False, description="animate", indent=False, layout=lay(width="90px"))
        self.show_attention = W.Checkbox(value=False, description="show attention", indent=False,
                                         layout=lay(width="130px"))
        self.fmt = W.ToggleButtons(options=["svg", "png"], value=fmt, style={"button_width": "48px"})
        self.status = W.Label(value="")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True, layout=lay(width="100px"))
        self.regenerate_button = W.Button(description="Write", icon="pencil", layout=lay(width="100px"),
                                          tooltip="write again (try another seed for a different sample)")
        self.output = W.HTML(value="", layout=lay(overflow="auto"))
        self.attention = W.Image(format="png", layout=lay(display="none", max_width="480px"))
        self.widget = W.VBox([
            self.text,
            W.HBox([self.bias, self.seed, self.model, self.candidates]),
            W.HBox([self.style, self.samples_path, self.load_button]),
            W.HBox([self.stroke_width, self.color, self.animate, self.show_attention, self.fmt]),
            W.HBox([self.regenerate_button, self.cancel_button, self.status]),
            W.HBox([self.output, self.attention]),
        ])  # fmt: skip

        for w in (self.text, self.bias, self.seed, self.model, self.style, self.candidates):
            w.observe(self._on_generation_change, names="value")
        for w in (self.stroke_width, self.color, self.animate, self.fmt):
            w.observe(self._on_render_change, names="value")
        self.show_attention.observe(self._on_attention_change, names="value")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.regenerate_button.on_click(lambda _: self.request(force=True))
        self.load_button.on_click(lambda _: self._load_clicked())
        if autostart:
            self.request(force=True)

    # -- display ----------------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # -- state ------------------------------------------------------------------------------------------

    def get_state(self) -> PanelState:
        """The current settings of the widgets."""
        return PanelState(
            text=self.text.value, bias=float(self.bias.value), style=self.style.value, model=self.model.value or "",
            seed=int(self.seed.value), stroke_width=float(self.stroke_width.value), color=self.color.value,
            animate=bool(self.animate.value), show_attention=bool(self.show_attention.value), fmt=self.fmt.value,
            max_chars=self.max_chars, candidates=int(self.candidates.value),
        )  # fmt: skip

    @property
    def styles(self) -> list[str]:
        """The labels of the style picker."""
        return list(self._styles)

    def add_styles(self, spec: Any) -> list[str]:
        """Add styles (a JSON samples file, Samples, ...) to the picker; returns the new labels."""
        new = _styles_from(spec)
        for st in new:
            self._styles[st.label] = st
        current = self.style.value
        self.style.options = list(self._styles)
        self.style.value = current if current in self._styles else NO_STYLE.label
        return [st.label for st in new]

    def add_style_file(self, path: str | os.PathLike) -> str:
        """Add a style file (``handwriting style fit``) to the model picker — its base model with the style put
        in — and return its label (``base+name``); the picker stays where it was."""
        label = self._models.add_style_file(path)
        current = self.model.value
        self.model.options = self._models.labels
        self.model.value = current
        return label

    def _load_clicked(self) -> None:
        path = self.samples_path.value.strip()
        if not path:
            self._set_status("type the path of a samples file (saved by HandwritingCanvas) first")
            return
        if path.endswith(".style"):
            try:
                label = self.add_style_file(path)
            except (HandwritingError, OSError) as exc:
                self._set_status(f"error: {exc}", error=True)
                return
            self.model.value = label  # (regenerates)
            self._set_status(f"added the style file {path} to the model picker as {label}")
            return
        try:
            labels = self.add_styles(path)
        except (HandwritingError, OSError) as exc:
            self._set_status(f"error: {exc}", error=True)
            return
        if labels:
            self.style.value = labels[0]  # (regenerates)
        self._set_status(f"added {len(labels)} style{'s' if len(labels) != 1 else ''} from {path}")

    # -- generation -------------------------------------------------------------------------------------

    def generate(self, state: PanelState, cancel: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None) -> PanelResult:
        """Generate every line of ``state.text`` (synchronously), checking ``cancel`` between batches."""
        t0 = time.perf_counter()
        backend = self._models.resolve(state.model)
        style = self._styles.get(state.style, NO_STYLE)
        piece_chars = state.max_chars
        if _is_module(backend):  # a model writes no more than its context or training lines hold: in pieces
            from .generate import default_line_chars

            prime = None if style.prime is None else (style.prime.offsets, style.prime.text)
            piece_chars = min(piece_chars, default_line_chars(backend, prime))
        lines = [ln for ln in wrap_text(state.text, state.max_chars) if ln]  # (the panel shows no blank lines)
        if not lines:
            raise HandwritingError("nothing to write: type some text")
        planned = [line_pieces(ln, piece_chars) for ln in lines]
        todo = [(i, p) for i, (ps, _) in enumerate(planned) for p in ps]
        done: list[tuple[Sample, np.ndarray | None, str]] = []
        step = self.batch_lines
        for start in range(0, len(todo), step):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if progress is not None:
                progress(start, len(todo))
            done += _generate_batch(backend, [p for _, p in todo[start : start + step]], state.bias, style,
                                    state.seed + start, state.show_attention, state.candidates)
        if progress is not None:
            progress(len(todo), len(todo))
        joined = assemble_lines(planned, [s.offsets for s, _, _ in done])
        firsts = [done[k] for k, (i, _) in enumerate(todo) if k == 0 or todo[k - 1][0] != i]  # each line's first piece
        samples: list[Sample] = []
        phis: list[np.ndarray | None] = []
        labels: list[str] = []
        for line, offsets, (s, phi, label) in zip(lines, joined, firsts):  # a line shows its first piece's attention
            if offsets is not s.offsets:
                s = Sample(offsets, text=line, writer=s.writer, source=s.source)
            samples.append(s)
            phis.append(phi)
            labels.append(label)
        return PanelResult(samples, phis, labels, state.generation_key(), time.perf_counter() - t0)

    def regenerate(self) -> PanelResult:
        """Generate and show the writing for the current settings now, in this thread; returns the result
        (raises on errors, which are also shown in the status label)."""
        self._cancel_timer()
        with self._lock:
            if self._job is not None:
                self._job.cancel.set()
            job = self._job = _Job(self.get_state().generation_key())
        return self._run(job, raise_errors=True)

    def request(self, force: bool = False) -> None:
        """Regenerate after the debounce delay (at once with ``debounce=0``), in the background if enabled."""
        if not force and self.result is not None and self.result.key == self.get_state().generation_key():
            return
        self._cancel_timer()
        if self.debounce > 0:
            self._timer = threading.Timer(self.debounce, self._launch)
            self._timer.daemon = True
            self._timer.start()
        else:
            self._launch()

    def _launch(self) -> None:
        with self._lock:
            if self._job is not None:
                self._job.cancel.set()
            job = self._job = _Job(self.get_state().generation_key())
        if self.background:
            job.thread = threading.Thread(target=self._run, args=(job,), daemon=True, name="handwriting-panel")
            job.thread.start()
        else:
            self._run(job)

    def _run(self, job: _Job, raise_errors: bool = False) -> PanelResult | None:
        state = self.get_state()
        self.cancel_button.disabled = False

        def progress(i: int, n: int) -> None:
            if self._job is job and n > 1:
                self._set_status(f"writing line {min(i + 1, n)} of {n} …")

        self._set_status("writing …")
        try:
            result = self.generate(state, job.cancel, progress)
            if job.cancel.is_set():
                raise Cancelled("cancelled")
        except Cancelled:
            if self._job is job:
                self._set_status("cancelled")
                self.cancel_button.disabled = True
            return None
        except Exception as exc:  # shown in the panel: a notebook user sees why nothing changed
            if self._job is job:
                self._set_status(f"error: {exc}", error=True)
                self.cancel_button.disabled = True
            if raise_errors:
                raise
            return None
        with self._lock:
            if self._job is not job:  # a newer request superseded this one
                return result
            self.result = result
            self.cancel_button.disabled = True
        self._show(state)
        return result

    def wait(self, timeout: float = 60.0) -> PanelResult | None:
        """Wait for a pending or running background job to finish (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while self._timer is not None and self._timer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(max(0.0, deadline - time.monotonic()))
        return self.result

    def cancel(self) -> None:
        """Stop the running generation (between lines) and any pending one."""
        self._cancel_timer()
        with self._lock:
            if self._job is not None:
                self._job.cancel.set()
        self.cancel_button.disabled = True

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- display of results -----------------------------------------------------------------------------

    def _set_status(self, text: str, error: bool = False) -> None:
        self.error = text if error else None
        self.status.value = text

    def _show(self, state: PanelState | None = None) -> None:
        state = state or self.get_state()
        result = self.result
        if result is None:
            return
        try:
            self.picture = render_state(state, result)
        except HandwritingError as exc:
            self._set_status(f"error: {exc}", error=True)
            return
        self.output.value = _as_html(self.picture)
        n = len(result.lines)
        self._set_status(f"{n} line{'s' if n != 1 else ''} in {result.seconds:.2f} s")
        k = next((i for i, p in enumerate(result.phi) if p is not None), None)
        if state.show_attention and k is not None:
            phi = result.phi[k]
            text = result.phi_text[k] if k < len(result.phi_text) else result.lines[k].text
            self.attention.value = render_attention(phi, text)
            self.attention.layout.display = None
        else:
            self.attention.layout.display = "none"
            if state.show_attention:
                self._set_status(self.status.value + " (this model gives no attention window)")

    def _on_generation_change(self, change) -> None:
        self.request()

    def _on_render_change(self, change) -> None:
        if self.result is not None:
            self._show()

    def _on_attention_change(self, change) -> None:
        if change["new"] and self.result is not None and not self.result.has_attention:
            self.request(force=True)  # generate again, asking for the internals
        else:
            self._show()


def panel(model: Any = None, styles: Any = None, **options: Any) -> Panel:
    """Build a :class:`Panel` (it displays itself in a notebook); options as for :class:`Panel`."""
    return Panel(model, styles, **options)


# ----------------------------------------------------------------------------------------------------------
# smoothing: re-write a sample's own text, primed on itself, at higher biases


def smooth(
    sample: Sample,
    model: Any = None,
    biases: Sequence[float] = (0.5, 1.0, 2.0),
    seed: int | None = 0,
    *,
    text: str | None = None,
    generator: Callable | None = None,
) -> list[Sample]:
    """Tidy up a piece of handwriting: prime the model with ``sample`` and write its own text again at each
    of ``biases`` (Graves §5.5 + §5.4) — the same hand, steadier as the bias grows.  Returns one Sample per bias.

    model: a model, a pretrained name, or ``None`` (the default pretrained model); ``generator`` (as for
    :class:`Panel`) replaces the model.  ``text``: what to write (default: the sample's own text).
    """
    if not isinstance(sample, Sample):
        raise HandwritingError(f"smooth: expected a handwriting Sample, got {type(sample).__name__}")
    text = sample.text if text is None else text
    if not text.strip():
        raise HandwritingError("smooth: the sample has no text; pass text='what it says'")
    style = Style(f"sample: {text}", "sample", writer=sample.writer, sample=sample)
    if generator is not None:
        return [_unpack(generator(text, float(b), style, seed), "generator")[0] for b in biases]
    write = _write_fn()
    out = write(text, model=model, bias=[float(b) for b in biases], prime=sample, seed=seed)
    return list(out)
