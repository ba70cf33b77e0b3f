"""Reading handwriting back: the recognizer that scores legibility and reranks candidates, and edit distance.

Kept apart from :mod:`handwriting.evaluate` (which measures) so that :func:`handwriting.generate.write` can
rerank its candidates without importing the evaluation layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .errors import HandwritingError

__all__ = ["DEFAULT_RECOGNIZER", "EvaluateError", "best_candidates", "edit_distance", "load_recognizer"]

DEFAULT_RECOGNIZER = "recognizer-bigbank"
REPO_PRETRAINED = Path(__file__).resolve().parents[1] / "data" / "pretrained"


class EvaluateError(HandwritingError):
    """An evaluation that cannot run (no recognizer, no texts, a model that cannot write)."""


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def best_candidates(reads: Sequence[str], texts: Sequence[str], candidates: int) -> list[int]:
    """For each text, the index (into ``reads``) of the candidate read closest to it.

    ``reads`` holds ``candidates`` consecutive readings per text (``len(reads) == candidates * len(texts)``);
    the closest is the one at the smallest edit distance from the text, the first of them on a tie."""
    if len(reads) != candidates * len(texts):
        raise ValueError(f"best_candidates: {len(reads)} readings for {len(texts)} texts x {candidates} candidates")
    out = []
    for j, text in enumerate(texts):
        block = range(j * candidates, (j + 1) * candidates)
        out.append(min(block, key=lambda i: edit_distance(reads[i], text)))
    return out


def load_recognizer(name_or_path: Any = None, device: str = "cpu"):
    """The recognizer: a module (returned as is), a pretrained name (default ``recognizer-bigbank``) or a
    checkpoint path.  Anything else than a recognizer (a generator, say) is refused with an :class:`EvaluateError`.
    Loaded recognizers are cached by path and modification time, as :func:`~handwriting.generate.resolve_model`
    caches generators (best-of-N decoding loads one for every ``write``)."""
    import torch

    from . import checkpoint as ckpt
    from .devices import resolve_device
    from .models import recognizer as _rec  # noqa: F401  (registers the class for load_model)

    device = str(resolve_device(device))
    if isinstance(name_or_path, torch.nn.Module):
        return _check_recognizer(name_or_path, type(name_or_path).__name__)
    name = os.fspath(name_or_path or DEFAULT_RECOGNIZER)
    weights, _ = ckpt.model_paths(name)
    if not weights.is_file():
        from .pretrained import find_pretrained

        try:
            weights = find_pretrained(name)
        except HandwritingError:
            weights = REPO_PRETRAINED / f"{name}.safetensors"
    if not weights.is_file():
        raise EvaluateError(
            f"no recognizer {name!r} ({weights} does not exist); train one with "
            "`handwriting train recognizer --out data/pretrained/recognizer-bigbank` or pass --recognizer PATH"
        )
    return ckpt.cached_load("recognizer", weights, device,
                            lambda: _check_recognizer(ckpt.load_model(weights, device=device)[0], name))


def _check_recognizer(model, name: str):
    if callable(getattr(model, "recognize", None)):
        return model
    kind = type(model).__name__
    if callable(getattr(model, "sample", None)) or callable(getattr(model, "generate", None)):
        kind += ", a handwriting generator"
    raise EvaluateError(
        f"recognizer {name!r} is a {kind}, not a recognizer (it has no recognize()); pass --recognizer "
        f"{DEFAULT_RECOGNIZER} (the default) or a checkpoint made by `handwriting train recognizer`"
    )
