"""Writing styles: the ways to prime a model, as listed in the panel's style picker.

A :class:`Style` is a way to prime the model (Graves §5.5: continue a real sample, then write the new text
in its hand): none (the model's own average hand, :data:`NO_STYLE`), a synthetic writer
(:data:`~handwriting.datasets.synthetic.WRITERS`, :func:`synthetic_styles`), a bigbank word
(:func:`bigbank_styles`), or your own samples saved by the drawing canvas in the project's JSON format
(:func:`file_styles`), or given directly (:func:`sample_styles`).

No widgets here (nothing imports ipywidgets): :mod:`handwriting.widgets` builds its picker from these and
re-exports them, and anything else that primes a model can use them without a notebook.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from .errors import DataError, HandwritingError
from .strokes import Sample

__all__ = [
    "PRIME_TEXT",
    "Style",
    "NO_STYLE",
    "synthetic_styles",
    "bigbank_styles",
    "file_styles",
    "sample_styles",
]

#: the text the synthetic writers write to make a priming sample.
PRIME_TEXT = "a quick brown fox"


@dataclass(eq=False)
class Style:
    """One entry of the style picker.

    kind: ``"none"`` (no priming), ``"synthetic"`` (a synthetic writer, ``writer`` is its name), ``"bigbank"``,
    ``"file"`` (a sample from a JSON file) or ``"sample"`` (a sample given directly).
    sample: the priming sample (synthetic writers make theirs on first use, see :attr:`prime`).
    """

    label: str
    kind: str = "none"
    writer: str | None = None
    sample: Sample | None = None
    seed: int = 0

    @property
    def prime(self) -> Sample | None:
        """The sample to prime the model with (``None`` for no priming); synthetic ones are drawn lazily."""
        if self.sample is None and self.kind == "synthetic" and self.writer is not None:
            from .datasets.synthetic import synthesize

            self.sample = synthesize([PRIME_TEXT], writer=self.writer, seed=self.seed)[0]
        return self.sample


NO_STYLE = Style("model's own hand (no priming)", "none")


def synthetic_styles(seed: int = 0) -> list[Style]:
    """One style per synthetic writer (their priming samples are drawn on first use)."""
    from .datasets.synthetic import WRITERS

    return [Style(f"synthetic: {name}", "synthetic", writer=name, seed=seed) for name in WRITERS]


def _describe(s: Sample, i: int) -> str:
    text = s.text if len(s.text) <= 24 else s.text[:23] + "…"
    who = f", {s.writer}" if s.writer else ""
    return f"{text!r} (#{i}{who})"


def bigbank_styles(n: int = 12, path: str | os.PathLike | None = None) -> list[Style]:
    """The first ``n`` bigbank words as styles ([] when bigbank is not available; it is never downloaded)."""
    from .datasets.jsonink import load_bigbank

    try:
        samples = load_bigbank(path, limit=n)
    except (HandwritingError, OSError):
        return []
    return [Style(f"bigbank: {_describe(s, i)}", "bigbank", writer=s.writer, sample=s) for i, s in enumerate(samples)]


def file_styles(path: str | os.PathLike) -> list[Style]:
    """Every sample of a file in the project's JSON format (see :func:`handwriting.datasets.jsonink.load_samples`)."""
    from .datasets.jsonink import load_samples

    path = Path(path)
    samples = load_samples(path)
    if not samples:
        raise DataError(f"{path}: the file holds no samples; draw some with HandwritingCanvas and save them")
    return [Style(f"{path.name}: {_describe(s, i)}", "file", writer=s.writer, sample=s) for i, s in enumerate(samples)]


def sample_styles(samples: Iterable[Sample], prefix: str = "mine") -> list[Style]:
    """Styles for samples given directly (e.g. ``canvas.samples``)."""
    out = []
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            raise DataError(f"styles: item {i} is a {type(s).__name__}, not a handwriting Sample")
        out.append(Style(f"{prefix}: {_describe(s, i)}", "sample", writer=s.writer, sample=s))
    return out


def _styles_from(spec: Any) -> list[Style]:
    """Styles from a path, a Style, a Sample, a synthetic writer name, or a list/dict of those."""
    from .datasets.synthetic import WRITERS

    if spec is None:
        return []
    if isinstance(spec, Style):
        return [spec]
    if isinstance(spec, Sample):
        return sample_styles([spec])
    if isinstance(spec, (str, os.PathLike)):
        if isinstance(spec, str) and spec in WRITERS:
            return [Style(f"synthetic: {spec}", "synthetic", writer=spec)]
        return file_styles(spec)
    if isinstance(spec, dict):
        out = []
        for label, v in spec.items():
            if isinstance(v, Sample):
                out.append(Style(str(label), "sample", writer=v.writer, sample=v))
            elif isinstance(v, str) and v in WRITERS:
                out.append(Style(str(label), "synthetic", writer=v))
            elif isinstance(v, Style):
                out.append(replace(v, label=str(label)))
            else:
                raise DataError(
                    f"styles[{label!r}]: expected a Sample or a synthetic writer name ({', '.join(WRITERS)}), "
                    f"got {type(v).__name__}"
                )
        return out
    if isinstance(spec, (list, tuple)):
        if all(isinstance(s, Sample) for s in spec):
            return sample_styles(spec)
        return [st for item in spec for st in _styles_from(item)]
    raise DataError(
        f"styles: cannot use a {type(spec).__name__}; pass a JSON samples file, a list of Samples, or a dict "
        "label -> Sample"
    )
