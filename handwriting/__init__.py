"""handwriting: online handwriting generation — data, Graves' networks, the cursive transformer.

The numpy-only stroke layer (:mod:`handwriting.strokes`) imports instantly; the heavier entry points
(``write``, ``load_pretrained``) are imported on first use.
"""

from .errors import DataError, HandwritingError
from .strokes import Normalizer, Sample, StrokeError

__version__ = "0.1.0"

_LAZY = {
    "write": "handwriting.generate",
    "load_pretrained": "handwriting.pretrained",
}


def __getattr__(name):  # PEP 562: lazy attributes
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'handwriting' has no attribute {name!r}")


__all__ = ["DataError", "HandwritingError", "Normalizer", "Sample", "StrokeError", "write", "load_pretrained"]
