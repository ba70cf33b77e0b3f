"""A drawing canvas for your own handwriting (notebook 08), and the next-point density of a prediction network.

:class:`HandwritingCanvas` shows a prompt from a word bank above an ipycanvas drawing area with a baseline and
an x-height guide.  Write the prompt with the mouse, a pen or a finger; **Undo** removes the last stroke,
**Clear** all of them, **Next** keeps the sample and shows the next prompt (edit the prompt first if you
wrote something else), **Skip** moves on without keeping it.  :meth:`~HandwritingCanvas.save` writes every
kept sample to the project's JSON format (:func:`handwriting.datasets.jsonink.save_samples`: several samples
per file, each with its text and writer); :meth:`~HandwritingCanvas.load` reads such a file back::

    from handwriting.canvas import HandwritingCanvas
    c = HandwritingCanvas(writer="ada", path="ada.json")   # with a path, Next also saves the file
    c                                                      # draw ...
    c.samples                                              # list[Sample], y up, data units

Coordinates: the canvas's y grows downwards; samples have y growing upwards, the origin on the baseline at
the left edge, in data units of ``units_per_px`` per pixel (default: the x-height guide is 0.12 units, the
scale of bigbank, so your samples can prime the pretrained models directly).

Pointer events are handled by plain methods (:meth:`~HandwritingCanvas._pointer_down`, ``_pointer_move``,
``_pointer_up``) that the ipycanvas mouse and touch callbacks call, so a test can drive a synthetic pointer
sequence without a browser.

Live prediction: pass ``predictor=`` a :class:`~handwriting.models.graves.PredictionNetwork` (or any callable
``predictor(offsets, xs, ys) -> density``; the last row of ``offsets`` has end_of_stroke 0 while the pen
is still down) and, while you write, an overlay shows where the network expects the pen to go next — :class:`NextPointDensity` evaluates its mixture density over a grid (Graves' figure 10).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import DataError, HandwritingError
from .strokes import Sample, check_offsets, from_strokes, to_absolute, to_strokes

__all__ = ["HandwritingCanvas", "NextPointDensity", "DEFAULT_WORDS"]

#: the default prompts: common words that together use every lower-case letter, some capitals and digits.
DEFAULT_WORDS: tuple[str, ...] = (
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "handwriting", "hello", "world", "pack",
    "my", "box", "with", "five", "dozen", "liquor", "jugs", "Sphinx", "of", "black", "quartz", "judge", "vow",
    "zebra", "rhythm", "wave", "yellow", "kite", "Monday", "London", "2025", "42", "maybe?", "yes!", "it's",
    "giraffe", "question", "jovial",
)  # fmt: skip


class NextPointDensity:
    """Where a prediction network expects the next pen point: ``density = NextPointDensity(model)(offsets, xs, ys)``.

    The network reads the whole sequence so far (normalised with ``normalizer``, default the model's own
    ``model.normalizer``, else none) and its mixture for the *next* offset is evaluated at every grid point
    ``(xs[j], ys[i])`` (absolute positions, data units, y up): the result ``(len(ys), len(xs))`` is a
    probability density per square data unit (pen position only; the end-of-stroke probability is in
    :attr:`last_eos_prob`).
    """

    def __init__(self, model: Any, normalizer: Any = None):
        self.model = model
        self.normalizer = normalizer if normalizer is not None else getattr(model, "normalizer", None)
        self.last_eos_prob: float | None = None
        self._cache: tuple | None = None  # (number of inputs run, recurrent state after them)
        self._cache_inputs: np.ndarray | None = None

    def params(self, offsets: np.ndarray):
        """The network's mixture parameters for the next offset (one step, leading shape ``()``).

        While a drawing only grows, the recurrent state after all but the last input is kept, so each call
        runs the network over the new points only (when ``model.forward(x, state)`` takes a state)."""
        import torch

        off = np.asarray(offsets, dtype=np.float32)
        if off.ndim != 2 or off.shape[1] != 3 or not np.isfinite(off).all():
            raise HandwritingError(f"NextPointDensity: expected finite (N, 3) offsets, got shape {off.shape}")
        off = off if len(off) else None  # the last row's pen bit is 0 while the pen is still down
        x = np.zeros((0, 3), np.float32) if off is None else (
            self.normalizer.normalize(off) if self.normalizer is not None else off.astype(np.float32)
        )  # fmt: skip
        start = np.array([[0.0, 0.0, 1.0]], np.float32)  # every sequence starts from a lifted pen
        inputs = np.concatenate([start, x])  # inputs[t] predicts offsets[t]; the last one predicts the next
        model = self.model
        was_training = getattr(model, "training", False)
        device = next(model.parameters()).device if hasattr(model, "parameters") else "cpu"

        def run(chunk: np.ndarray, state=None):
            t = torch.from_numpy(np.ascontiguousarray(chunk)).unsqueeze(0).to(device)
            return model(t) if state is None else model(t, state)

        try:
            if was_training:
                model.eval()
            with torch.inference_mode():
                n = len(inputs) - 1  # inputs[:n] are final (only the last point's pen bit may still change)
                k, state = self._cache if self._cache is not None else (None, None)
                if k is not None and (k > n or not np.array_equal(self._cache_inputs[:k], inputs[:k])):
                    k, state = None, None
                try:
                    if n > (k or 0):
                        out = run(inputs[k or 0 : n], state)
                        state = getattr(out, "state", None)
                        k = n if state is not None else None
                    if state is not None:
                        out = run(inputs[n:], state)
                        self._cache, self._cache_inputs = (k, state), inputs[:n].copy()
                    else:
                        raise TypeError
                except TypeError:  # a model without a recurrent state: run over everything
                    self._cache = None
                    out = run(inputs)
        finally:
            if was_training:
                model.train()
        params = out.params if hasattr(out, "params") else out
        return params.map(lambda t: t[0, -1].float().cpu())

    def __call__(self, offsets: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        import torch

        from .models.mdn import mixture_log_density

        offsets = np.asarray(offsets, dtype=np.float32).reshape(-1, 3)
        p = self.params(offsets)
        self.last_eos_prob = float(torch.sigmoid(p.eos_logit))
        last = to_absolute(offsets)[-1, :2] if len(offsets) else np.zeros(2)
        gx, gy = np.meshgrid(np.asarray(xs, np.float64) - last[0], np.asarray(ys, np.float64) - last[1])
        d = np.stack([gx, gy], -1)  # offsets from the last point, data units
        mean, std = (np.zeros(2), np.ones(2))
        if self.normalizer is not None:
            mean, std = np.asarray(self.normalizer.mean), np.asarray(self.normalizer.std)
        z = torch.from_numpy(((d - mean) / std).astype(np.float32))
        logp = mixture_log_density(p, z).numpy().astype(np.float64)
        return np.exp(logp) / float(std[0] * std[1])


class HandwritingCanvas:
    """Capture handwriting samples in a notebook (see the module docstring).

    word_bank: the prompts — a list of strings, a text file with one prompt per line, or ``None`` for
        :data:`DEFAULT_WORDS`; ``shuffle`` with ``seed`` mixes their order.
    writer: your name, saved with every sample.  path: the JSON file :meth:`save` writes by default (and that
        Next updates when ``autosave``).
    width, height: canvas size in pixels; x_height_px: height of the x-height guide above the baseline;
        units_per_px: data units per pixel (default: ``0.12 / x_height_px``).
    min_distance: pointer moves shorter than this (pixels) are not recorded.
    predictor: a prediction network or a callable ``(offsets, xs, ys) -> density`` for the live overlay;
        predict_every: also refresh it every this many recorded points while the pen is down (0: on pen up only).
    build: create the widgets (``False`` for a purely headless capture object).
    """

    def __init__(
        self,
        word_bank: Sequence[str] | str | os.PathLike | None = None,
        writer: str | None = None,
        *,
        path: str | os.PathLike | None = None,
        autosave: bool = True,
        width: int = 640,
        height: int = 220,
        x_height_px: float = 40.0,
        units_per_px: float | None = None,
        min_distance: float = 1.5,
        line_width: float = 3.0,
        color: str = "#1a1a1a",
        predictor: Any = None,
        predict_every: int = 8,
        prediction_cell: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        build: bool = True,
    ):
        if writer is not None and not isinstance(writer, str):
            raise HandwritingError(f"HandwritingCanvas: writer must be a name (string), got {writer!r}")
        self.words = _word_bank(word_bank)
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self.words))
            self.words = [self.words[i] for i in order]
        self.writer = writer
        self.path = Path(path) if path is not None else None
        self.autosave = autosave
        self.width, self.height = int(width), int(height)
        self.x_height_px = float(x_height_px)
        self.baseline_px = round(self.height * 0.62)
        self.units_per_px = float(units_per_px) if units_per_px is not None else 0.12 / self.x_height_px
        self.min_distance = float(min_distance)
        self.line_width = float(line_width)
        self.color = color
        self.predict_every = int(predict_every)
        self.prediction_cell = max(1, int(prediction_cell))
        if predictor is not None and not callable(predictor):
            raise HandwritingError("HandwritingCanvas: predictor must be a prediction network or a callable")
        if predictor is not None and _is_module(predictor):
            predictor = NextPointDensity(predictor)
        self.predictor: Callable | None = predictor
        self.prediction: np.ndarray | None = None  # the last density grid (rows × cols of cells)

        self._strokes: list[np.ndarray] = []
        self._current: list[tuple[float, float]] | None = None
        self._samples: list[Sample] = []
        self._index = 0
        self._since_prediction = 0

        self.canvas = None
        if build:
            self._build()
        self._show_prompt()

    # -- widgets --------------------------------------------------------------------------------------------

    def _build(self) -> None:
        import ipywidgets as W
        from ipycanvas import MultiCanvas

        self.canvas = MultiCanvas(3, width=self.width, height=self.height)  # guides, ink, prediction overlay
        self.canvas.layout.border = "1px solid #bbb"
        self._guides, self._ink, self._overlay = self.canvas[0], self.canvas[1], self.canvas[2]
        self._ink.line_width = self.line_width
        self._ink.stroke_style = self.color
        self._ink.line_cap = "round"
        self._ink.line_join = "round"
        self._draw_guides()
        c = self.canvas
        c.on_mouse_down(self._pointer_down)
        c.on_mouse_move(self._pointer_move)
        c.on_mouse_up(self._pointer_up)
        c.on_mouse_out(self._pointer_out)
        c.on_touch_start(lambda t: t and self._pointer_down(*t[0]))
        c.on_touch_move(lambda t: t and self._pointer_move(*t[0]))
        c.on_touch_end(lambda t: self._pointer_up(*(t[0] if t else self._last_point())))
        c.on_touch_cancel(lambda t: self._pointer_up(*(t[0] if t else self._last_point())))

        self.prompt = W.Text(description="text", layout=W.Layout(width="320px"),
                             tooltip="what you are writing (edit it if you wrote something else)")
        self.banner = W.HTML()
        self.status = W.Label()
        buttons = []
        for label, icon, fn in (
            ("Undo", "undo", self.undo), ("Clear", "eraser", self.clear), ("Next", "check", self.next),
            ("Skip", "forward", self.skip), ("Save", "save", self._save_clicked),
        ):
            b = W.Button(description=label, icon=icon, layout=W.Layout(width="90px"))
            b.on_click(lambda _b, fn=fn: self._safe(fn))
            buttons.append(b)
        self.buttons = {b.description: b for b in buttons}
        self.path_box = W.Text(value=str(self.path or ""), placeholder="my_handwriting.json", description="file",
                               layout=W.Layout(width="320px"))
        load = W.Button(description="Load", icon="folder-open", layout=W.Layout(width="90px"))
        load.on_click(lambda _b: self._safe(self._load_clicked))
        self.buttons["Load"] = load
        self.widget = W.VBox([
            self.banner, self.canvas, W.HBox([self.prompt, *buttons]), W.HBox([self.path_box, load, self.status]),
        ])  # fmt: skip

    def _repr_mimebundle_(self, **kwargs):
        if self.canvas is None:
            return {"text/plain": repr(self)}
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget if self.canvas is not None else repr(self))

    def __repr__(self) -> str:
        return f"HandwritingCanvas(writer={self.writer!r}, samples={len(self._samples)}, strokes={len(self._strokes)})"

    def _safe(self, fn: Callable) -> None:
        try:
            fn()
        except (HandwritingError, OSError) as exc:
            self._set_status(f"error: {exc}")

    def _set_status(self, text: str) -> None:
        if self.canvas is not None:
            self.status.value = text

    def _draw_guides(self) -> None:
        g = self._guides
        g.clear()
        g.fill_style = "#ffffff"
        g.fill_rect(0, 0, self.width, self.height)
        g.stroke_style = "#9db4d6"
        g.line_width = 1.5
        g.stroke_line(0, self.baseline_px, self.width, self.baseline_px)
        g.stroke_style = "#dde6f2"
        g.line_width = 1.0
        y = self.baseline_px - self.x_height_px
        g.set_line_dash([6, 6])
        g.stroke_line(0, y, self.width, y)
        g.set_line_dash([])

    def _redraw_ink(self) -> None:
        if self.canvas is None:
            return
        from ipycanvas import hold_canvas

        with hold_canvas():
            self._ink.clear()
            for s in self._strokes:
                self._draw_stroke(s)
            if self._current:
                self._draw_stroke(np.asarray(self._current))

    def _draw_stroke(self, pts: np.ndarray) -> None:
        if len(pts) == 1:
            self._ink.fill_style = self.color
            self._ink.fill_circle(float(pts[0, 0]), float(pts[0, 1]), self.line_width / 2)
        else:
            self._ink.stroke_lines(pts.tolist())

    # -- pointer handling (pure: tests call these directly) ------------------------------------------------

    def _last_point(self) -> tuple[float, float]:
        if self._current:
            return self._current[-1]
        return (0.0, 0.0)

    def _pointer_down(self, x: float, y: float) -> None:
        if self._current:  # a down without an up (the pointer left and came back): end that stroke first
            self._finish_stroke()
        self._current = [(float(x), float(y))]
        self._since_prediction = 0
        if self.canvas is not None:
            self._ink.fill_style = self.color
            self._ink.fill_circle(float(x), float(y), self.line_width / 2)

    def _add_point(self, x: float, y: float) -> bool:
        """Record a point of the stroke being drawn (unless it is within ``min_distance`` of the last one)."""
        if self._current is None:
            return False
        x, y = float(x), float(y)
        px, py = self._current[-1]
        if (x - px) ** 2 + (y - py) ** 2 < self.min_distance**2:
            return False
        self._current.append((x, y))
        if self.canvas is not None:
            self._ink.stroke_line(px, py, x, y)
        return True

    def _pointer_move(self, x: float, y: float) -> None:
        if not self._add_point(x, y):
            return
        self._since_prediction += 1
        if self.predictor is not None and self.predict_every > 0 and self._since_prediction >= self.predict_every:
            self._since_prediction = 0
            self.update_prediction()

    def _pointer_up(self, x: float, y: float) -> None:
        if self._current is None:
            return
        self._add_point(x, y)
        self._finish_stroke()
        if self.predictor is not None:
            self.update_prediction()

    def _pointer_out(self, x: float, y: float) -> None:
        if self._current is not None:
            self._finish_stroke()

    def _finish_stroke(self) -> None:
        if self._current:
            self._strokes.append(np.asarray(self._current, dtype=np.float64))
        self._current = None

    # -- strokes and samples ---------------------------------------------------------------------------------

    @property
    def strokes(self) -> list[np.ndarray]:
        """The finished strokes of the current drawing, ``(n, 2)`` arrays in canvas pixels (y down)."""
        return [s.copy() for s in self._strokes]

    def to_data(self, pts: np.ndarray) -> np.ndarray:
        """Canvas pixels (y down) → data units (y up, origin on the baseline at the left edge)."""
        pts = np.asarray(pts, dtype=np.float64)
        out = np.empty_like(pts)
        out[:, 0] = pts[:, 0] * self.units_per_px
        out[:, 1] = (self.baseline_px - pts[:, 1]) * self.units_per_px
        return out

    def to_canvas(self, pts: np.ndarray) -> np.ndarray:
        """Data units (y up) → canvas pixels (y down); the inverse of :meth:`to_data`."""
        pts = np.asarray(pts, dtype=np.float64)
        out = np.empty_like(pts)
        out[:, 0] = pts[:, 0] / self.units_per_px
        out[:, 1] = self.baseline_px - pts[:, 1] / self.units_per_px
        return out

    def offsets(self, include_current: bool = True) -> np.ndarray:
        """The drawing so far as offsets ``(N, 3)`` (data units, y up); ``(0, 3)`` when nothing is drawn."""
        strokes = list(self._strokes)
        if include_current and self._current:
            strokes.append(np.asarray(self._current))
        if not strokes:
            return np.zeros((0, 3), np.float32)
        return from_strokes([self.to_data(s) for s in strokes], where="canvas")

    @property
    def text(self) -> str:
        """The text of the current drawing (the prompt, as edited)."""
        return self.prompt.value if self.canvas is not None else self._prompt_text

    @text.setter
    def text(self, value: str) -> None:
        self._prompt_text = str(value)
        if self.canvas is not None:
            self.prompt.value = self._prompt_text

    def current_sample(self) -> Sample | None:
        """The drawing on the canvas as a :class:`Sample` (``None`` when it is empty)."""
        off = self.offsets(include_current=True)
        if len(off) == 0:
            return None
        return Sample(off, text=self.text, writer=self.writer, source="canvas")

    @property
    def samples(self) -> list[Sample]:
        """The kept samples (y up, data units), oldest first."""
        return list(self._samples)

    @property
    def prompt_text(self) -> str:
        return self.words[self._index % len(self.words)]

    def _show_prompt(self) -> None:
        self.text = self.prompt_text
        if self.canvas is not None:
            n = len(self._samples)
            self.banner.value = (
                f'<div style="font-size:1.4em">write: <b>{_html(self.prompt_text)}</b>'
                f'<span style="color:#888;font-size:0.7em">&nbsp;&nbsp;{n} sample{"s" if n != 1 else ""} kept'
                f"{' by ' + _html(self.writer) if self.writer else ''}</span></div>"
            )

    def undo(self) -> None:
        """Remove the last stroke."""
        if self._current:
            self._current = None
        elif self._strokes:
            self._strokes.pop()
        self._redraw_ink()
        self._refresh_prediction()

    def clear(self) -> None:
        """Remove every stroke of the current drawing."""
        self._strokes.clear()
        self._current = None
        self._redraw_ink()
        self._refresh_prediction()

    def accept(self) -> Sample:
        """Keep the current drawing as a sample (with the prompt's text) and clear the canvas."""
        s = self.current_sample()
        if s is None:
            raise HandwritingError("nothing drawn yet: write the prompt on the canvas first")
        if not s.text.strip():
            raise HandwritingError("the sample has no text: type what you wrote in the text box")
        self._samples.append(s)
        self.clear()
        return s

    def next(self) -> Sample:
        """Keep the drawing (:meth:`accept`), save the file if there is a path and ``autosave``, show the next prompt."""
        s = self.accept()
        self._index += 1
        self._show_prompt()
        if self.autosave and self._target_path() is not None:
            p = self.save()
            self._set_status(f"saved {len(self._samples)} samples to {p}")
        else:
            self._set_status(f"kept {s.text!r}")
        return s

    def skip(self) -> None:
        """Clear the canvas and show the next prompt without keeping anything."""
        self.clear()
        self._index += 1
        self._show_prompt()

    def _target_path(self) -> Path | None:
        if self.canvas is not None and self.path_box.value.strip():
            return Path(self.path_box.value.strip())
        return self.path

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the kept samples to ``path`` (default: the canvas's file) in the project's JSON format."""
        from .datasets.jsonink import save_samples

        target = Path(path) if path is not None else self._target_path()
        if target is None:
            raise HandwritingError("save: no file given; pass a path such as 'my_handwriting.json'")
        if not self._samples:
            raise HandwritingError("save: no samples kept yet; write the prompt and press Next first")
        units = f"data units: canvas pixels x {self.units_per_px:g}, y up, origin on the baseline"
        p = save_samples(target, self._samples, writer=self.writer, units=units)
        if path is not None:
            self.path = Path(path)
        return p

    def load(self, path: str | os.PathLike | None = None, append: bool = True) -> list[Sample]:
        """Read samples saved by :meth:`save` (added to the kept ones, or replacing them); returns them."""
        from .datasets.jsonink import load_samples

        target = Path(path) if path is not None else self._target_path()
        if target is None:
            raise HandwritingError("load: no file given; pass the path of a samples JSON file")
        loaded = load_samples(target)
        self._samples = (self._samples if append else []) + loaded
        if self.writer is None:
            self.writer = next((s.writer for s in loaded if s.writer), None)
        self._show_prompt()
        return loaded

    def _save_clicked(self) -> None:
        p = self.save()
        self._set_status(f"saved {len(self._samples)} samples to {p}")

    def _load_clicked(self) -> None:
        loaded = self.load()
        self._set_status(f"loaded {len(loaded)} samples from {self._target_path()}")

    def show(self, sample: Sample | np.ndarray) -> None:
        """Draw a sample on the canvas as the current drawing (e.g. to look at a loaded one, or to continue it)."""
        off = check_offsets(sample.offsets if isinstance(sample, Sample) else sample, "show")
        self._strokes = [self.to_canvas(s) for s in to_strokes(off)]
        self._current = None
        if isinstance(sample, Sample) and sample.text:
            self.text = sample.text
        self._redraw_ink()
        self._refresh_prediction()

    # -- live prediction ----------------------------------------------------------------------------------

    def prediction_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The predictor's density of the next pen position at the centre of each ``prediction_cell``-pixel
        cell: ``(xs_px, ys_px, density)`` with density ``(len(ys_px), len(xs_px))`` (``None`` without a predictor)."""
        if self.predictor is None:
            return None
        c = self.prediction_cell
        xs_px = np.arange(c / 2, self.width, c, dtype=np.float64)
        ys_px = np.arange(c / 2, self.height, c, dtype=np.float64)
        data = self.to_data(np.stack([xs_px, np.full_like(xs_px, self.baseline_px)], 1))[:, 0]
        ys = (self.baseline_px - ys_px) * self.units_per_px
        off = self.offsets(include_current=True)
        if self._current and len(off):
            off[-1, 2] = 0.0  # the pen is still down: the stroke goes on
        density = np.asarray(self.predictor(off, data, ys), dtype=np.float64)
        if density.shape != (len(ys_px), len(xs_px)):
            raise HandwritingError(
                f"predictor returned a grid of shape {density.shape}, expected {(len(ys_px), len(xs_px))}"
            )
        return xs_px, ys_px, density

    def update_prediction(self) -> np.ndarray | None:
        """Recompute the density grid and draw it as an overlay; returns the grid."""
        grid = self.prediction_grid()
        if grid is None:
            return None
        self.prediction = grid[2]
        if self.canvas is not None:
            self._overlay.clear()
            self._overlay.put_image_data(_heat_rgba(grid[2], self.prediction_cell, self.width, self.height), 0, 0)
        return self.prediction

    def _refresh_prediction(self) -> None:
        if self.predictor is None:
            return
        if len(self._strokes) or self._current:
            self.update_prediction()
        else:
            self.prediction = None
            if self.canvas is not None:
                self._overlay.clear()


def _heat_rgba(density: np.ndarray, cell: int, width: int, height: int) -> np.ndarray:
    """A translucent orange overlay whose opacity follows the density (scaled to its maximum)."""
    d = np.nan_to_num(np.asarray(density, dtype=np.float64), nan=0.0, posinf=0.0)
    top = d.max()
    a = np.sqrt(d / top) if top > 0 else np.zeros_like(d)
    img = np.zeros(d.shape + (4,), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 110, 0
    img[..., 3] = np.round(a * 170).astype(np.uint8)
    img = np.repeat(np.repeat(img, cell, axis=0), cell, axis=1)
    return np.ascontiguousarray(img[:height, :width])


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _is_module(x: Any) -> bool:
    """Whether ``x`` is a torch module (without importing torch: a module implies torch is loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def _word_bank(spec: Sequence[str] | str | os.PathLike | None) -> list[str]:
    if spec is None:
        return list(DEFAULT_WORDS)
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{p}: cannot read the word bank ({exc}); give a UTF-8 text file with one prompt per line, "
                "or a list of strings"
            ) from exc
        words = [ln.strip() for ln in text.splitlines() if ln.strip()]
        where = str(p)
    else:
        words = list(spec)
        where = "word_bank"
        for i, w in enumerate(words):
            if not isinstance(w, str):
                raise DataError(f"{where}: item {i} is {w!r}, not a string; give the prompts as strings")
        words = [w.strip() for w in words if w.strip()]
    if not words:
        raise DataError(f"{where}: no prompts in the word bank; give at least one word or phrase")
    return words
