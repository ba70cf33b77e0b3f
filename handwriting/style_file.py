"""Style files: your hand as a small file of fine-tuned tensors on top of a shipped model.

A **style file** (``mine.style``) holds the few tensors that :func:`~handwriting.style_fit.fit_style` tuned on a
learner's samples — by default the mixture-density head, the attention window and every LSTM bias of Graves'
synthesis network (about 74,000 of its 1,014,000 parameters, ~290 KB) — and nothing else: the base model stays
what it is, shipped once, and any number of hands share it.  ``load_style("mine.style")`` is the base model
with those tensors put in (a copy: a cached, shared model is never changed); ``write("text",
style="mine.style")`` writes with it, and so does ``handwriting write "text" --style mine.style``.

The format
----------
One safetensors file (no pickle anywhere, so opening someone's style cannot run code): the tuned tensors
under their ``state_dict`` names, and in the header's metadata, as JSON under ``"handwriting"``::

    {"format": "handwriting.style", "format_version": 1,
     "base": {"name": "graves-synthesis-hands",     # the pretrained name (or checkpoint path) to load
              "class": "SynthesisNetwork",
              "sha256": "18b1…",                     # SHA-256 of the base's weights file (null: not from a file)
              "tensors_sha256": "…"},                # SHA-256 of the base's state_dict (names, dtypes, shapes, bytes)
     "tune": "head+window+biases",
     "tensors": {"head.linear.weight": [121, 512], …},
     "data": {"samples": 30, "words": 30, "chars": 152, "texts_sha256": "…", "writers": ["ada"]},
     "training": {"steps": 412, "wall_time_s": 298.7, "lr": 0.003, …},
     "created": "…", "handwriting_version": "0.1.0"}

and beside it ``"sha256"``: a digest of that JSON and every tensor's name, dtype, shape and bytes (the one
:mod:`handwriting.checkpoint` gives training states), so a damaged file is refused rather than half-used.
Files are written atomically (:func:`handwriting._io.atomic_write`): never half a file.

Every problem — a truncated or damaged file, something that is not a style file, a newer format, a base
model other than the one the style was fitted to (the SHA-256 differs), tensors that do not fit the model —
is a :class:`StyleError` naming the file, what is wrong and how to fix it.

Fitting (which needs the trainer and the data layer) lives in :mod:`handwriting.style_fit`, a layer above
:mod:`handwriting.generate`; ``fit_style`` is importable from here too.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_write
from .errors import HandwritingError

__all__ = ["FORMAT", "FORMAT_VERSION", "SUFFIX", "TUNE_SETS", "StyleError", "StyleFile", "tuned_names",
           "base_fingerprint", "texts_sha256", "read_style", "save_style", "apply_style", "load_style"]

FORMAT = "handwriting.style"
FORMAT_VERSION = 1
SUFFIX = ".style"
MAX_BYTES = 64 << 20  # a style file is a few hundred KB; anything near a whole model is not one

#: which tensors a style tunes: name → predicate on a ``state_dict`` name of Graves' synthesis network
TUNE_SETS: dict[str, Any] = {
    "head": lambda n: n.startswith("head."),
    "head+window": lambda n: n.startswith(("head.", "window.")),
    "head+biases": lambda n: n.startswith("head.") or (n.startswith("lstms.") and ".bias_" in n),
    "head+window+biases": lambda n: n.startswith(("head.", "window.")) or (n.startswith("lstms.") and ".bias_" in n),
    "all": lambda n: True,
}
DEFAULT_TUNE = "head+window+biases"


class StyleError(HandwritingError):
    """A style file that cannot be used: the message names the file, what is wrong and the fix."""


_REFIT = "fit the style again (`handwriting style fit SAMPLES.json -o FILE.style`) or restore a good copy"


def tuned_names(model: torch.nn.Module, tune: str = DEFAULT_TUNE) -> list[str]:
    """The parameter names of ``model`` that the tuning set ``tune`` (:data:`TUNE_SETS`) trains."""
    if tune not in TUNE_SETS:
        raise StyleError(f"tune={tune!r} is not a tuning set; use one of {', '.join(TUNE_SETS)}")
    names = [n for n, _ in model.named_parameters() if TUNE_SETS[tune](n)]
    if not names:
        raise StyleError(f"tune={tune!r} selects no parameters of {type(model).__name__}; style files tune Graves' "
                         "synthesis network (head, window, lstms)")
    return names


def _tensors_digest(tensors: dict[str, torch.Tensor], text: str = "") -> str:
    """SHA-256 of ``text`` then every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def base_fingerprint(model: torch.nn.Module, name: str | None = None) -> dict:
    """What a style records about its base model: its name (given, else the pretrained name it was loaded
    as), class, the SHA-256 of its weights file (from the description it was loaded with; ``None`` for a
    model that was never saved) and of its ``state_dict``."""
    weights = ((getattr(model, "meta", None) or {}).get("weights") or {})
    sha = weights.get("sha256") if isinstance(weights.get("sha256"), str) else None
    return {
        "name": name if name is not None else getattr(model, "pretrained_name", None),
        "class": type(model).__name__,
        "sha256": sha,
        "tensors_sha256": _tensors_digest(model.state_dict()),
    }


def texts_sha256(texts) -> str:
    """SHA-256 of the samples' texts, one per line, in order (which samples a style was fitted on)."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def _fits_base(recorded: dict, model: torch.nn.Module) -> tuple[bool, str, str]:
    """Whether ``model`` is the base ``recorded`` describes: by the weights file's SHA-256 when both sides
    know it, else by the state_dict's.  Returns (same, recorded sha, model's sha) for the message."""
    mine = ((getattr(model, "meta", None) or {}).get("weights") or {}).get("sha256")
    if isinstance(recorded.get("sha256"), str) and isinstance(mine, str):
        return recorded["sha256"] == mine, recorded["sha256"], mine
    digest = _tensors_digest(model.state_dict())
    return recorded.get("tensors_sha256") == digest, str(recorded.get("tensors_sha256")), digest


@dataclass
class StyleFile:
    """A style: the tuned ``tensors`` (name → tensor, on the CPU) and their description ``meta`` (see the
    module docstring); ``path`` is where it was read from or last saved."""

    tensors: dict[str, torch.Tensor]
    meta: dict
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else "style"

    @property
    def base(self) -> dict:
        return self.meta.get("base") or {}

    @property
    def base_name(self) -> str | None:
        return self.base.get("name")

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "the style"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the style to ``path`` atomically; returns the path."""
        return save_style(path, self)

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` (the base) with the style's tensors put in; see :func:`apply_style`."""
        return apply_style(self, model)

    def bytes(self) -> int | None:
        return self.path.stat().st_size if self.path is not None and self.path.is_file() else None

    def summary(self) -> str:
        """A few lines saying what the style is (``handwriting style show``)."""
        m, data, tr = self.meta, self.meta.get("data") or {}, self.meta.get("training") or {}
        n = sum(t.numel() for t in self.tensors.values())
        size = self.bytes()
        base = self.base
        lines = [
            f"{self.where}: a handwriting style (format {m.get('format')} v{m.get('format_version')})"
            + (f", {size / 1024:.0f} KB" if size is not None else ""),
            f"  base model   {base.get('name')} ({base.get('class')}, weights sha256 "
            f"{(base.get('sha256') or base.get('tensors_sha256') or '?')[:12]}…)",
            f"  tuned        {m.get('tune')}: {len(self.tensors)} tensors, {n:,} numbers",
            f"  fitted on    {data.get('samples')} samples, {data.get('words')} words, {data.get('chars')} characters"
            + (f" by {', '.join(data['writers'])}" if data.get("writers") else "")
            + f" (texts sha256 {str(data.get('texts_sha256'))[:12]}…)",
            f"  training     {tr.get('steps')} steps in {tr.get('wall_time_s')} s (budget "
            f"{tr.get('minutes')} min), lr {tr.get('lr')}, batch {tr.get('batch_size')}, train NLL/point "
            f"{tr.get('nll_per_point_first')} -> {tr.get('nll_per_point_last')}",
            f"  created      {m.get('created')} (handwriting {m.get('handwriting_version')})",
        ]
        v = m.get("validation")
        if v:
            lines.insert(-1, f"  held out     {v.get('samples')} samples: NLL/point {v.get('nll_per_point_base')} (base) -> "
                             f"{v.get('nll_per_point_kept')} at step {tr.get('kept_step')} (stopped by {tr.get('stopped_by')})")
        for k, t in sorted(self.tensors.items()):
            lines.append(f"    {k:<24} {list(t.shape)}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# reading and writing


def save_style(path: str | os.PathLike, style: StyleFile) -> Path:
    """Write ``style`` as one safetensors file at ``path`` (atomically: a failure leaves the old file)."""
    from safetensors.torch import save as st_save

    from . import __version__

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in style.tensors.items()}
    meta = dict(style.meta)
    meta.update(format=FORMAT, format_version=FORMAT_VERSION,
                tensors={k: list(t.shape) for k, t in sorted(tensors.items())})
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("handwriting_version", __version__)
    body = json.dumps(meta, sort_keys=True, allow_nan=False)
    blob = st_save(tensors, metadata={"format": "pt", "handwriting": body, "sha256": _tensors_digest(tensors, body)})
    try:
        with atomic_write(path, "wb") as f:
            f.write(blob)
    except OSError as exc:
        from .errors import OutputError

        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc}); free disk space or fix the folder's "
                          "permissions and save again") from exc
    style.meta, style.path = meta, path
    return path


def read_style(path: str | os.PathLike) -> StyleFile:
    """The style in ``path``, checked: a :class:`StyleError` for a missing, truncated, damaged or foreign file."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = Path(path)
    if not path.is_file():
        raise StyleError(f"{path}: no such style file; fit one with `handwriting style fit SAMPLES.json -o {path.name}`")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise StyleError(f"{path}: {size / 2**20:.0f} MB is far too large for a style file (a few hundred KB); is it a "
                         "model? Pass a .style file made by `handwriting style fit`")
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise StyleError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if len(blob) < 10 or blob[8:9] != b"{":
        raise StyleError(f"{path}: not a style file (a style file is a safetensors file written by "
                         f"`handwriting style fit`; this one is {len(blob)} bytes of something else)")
    try:
        tensors = st_load(blob)
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + n]).get("__metadata__") or {}
    except (SafetensorError, ValueError, AttributeError, json.JSONDecodeError) as exc:
        raise StyleError(f"{path}: damaged or truncated (not a readable safetensors file: {exc}); {_REFIT}") from exc
    try:
        meta = json.loads(header["handwriting"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise StyleError(f"{path}: not a handwriting style file (a safetensors file without a style description); "
                         "pass a .style file made by `handwriting style fit`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        what = meta.get("format") if isinstance(meta, dict) else None
        hint = " (a model or a training state: pass it as model=, not style=)" if what else ""
        raise StyleError(f"{path}: not a handwriting style file (format {what!r}, expected {FORMAT!r}){hint}")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise StyleError(f"{path}: format_version is {version!r}, expected an integer from 1 to {FORMAT_VERSION}; {_REFIT}")
    if version > FORMAT_VERSION:
        raise StyleError(f"{path}: written by a newer version of handwriting (style format_version {version}, this one "
                         f"reads up to {FORMAT_VERSION}); upgrade handwriting")
    if header.get("sha256") != _tensors_digest(tensors, header["handwriting"]):
        raise StyleError(f"{path}: damaged (its SHA-256 does not match the one recorded when it was saved); {_REFIT}")
    listed = meta.get("tensors")
    have = {k: list(t.shape) for k, t in tensors.items()}
    if listed != have:
        raise StyleError(f"{path}: the tensors {sorted(have)} do not match the ones its description lists "
                         f"({sorted(listed) if isinstance(listed, dict) else listed!r}); {_REFIT}")
    base = meta.get("base")
    if not isinstance(base, dict) or not (isinstance(base.get("sha256"), str) or isinstance(base.get("tensors_sha256"), str)):
        raise StyleError(f"{path}: does not say which base model it belongs to (base.sha256 missing); {_REFIT}")
    return StyleFile(tensors, meta, path)


def _as_style(style: Any) -> StyleFile:
    if isinstance(style, StyleFile):
        return style
    if isinstance(style, (str, os.PathLike)):
        return read_style(style)
    raise StyleError(f"style must be a style file's path or a StyleFile, got {type(style).__name__}")


# ----------------------------------------------------------------------------------------------------------
# applying


def apply_style(style: StyleFile | str | os.PathLike, model: torch.nn.Module, strength: float = 1.0) -> torch.nn.Module:
    """A copy of ``model`` with ``style``'s tensors put in (``model`` itself is not changed).  ``model`` must be
    the base the style was fitted to (same SHA-256) and every tensor must fit it, else a :class:`StyleError`.

    ``strength`` below 1 puts in the base's tensors moved only that part of the way to the style's (0: the base
    itself): a milder hand that stays more legible (on two restyled real hands, 0.75 kept 77% of the change in
    slant while the CER of eight written texts went from 0.45 / 0.48 to 0.38 / 0.40; the base's: 0.22)."""
    st = _as_style(style)
    if not (isinstance(strength, (int, float)) and 0.0 <= strength <= 1.0):
        raise StyleError(f"strength must be a number from 0 (the base model) to 1 (the full style), got {strength!r}")
    same, want, got = _fits_base(st.base, model)
    if not same:
        have = getattr(model, "pretrained_name", None) or type(model).__name__
        raise StyleError(
            f"{st.where} was fitted to the base model {st.base_name!r} (weights sha256 {want[:12]}…), but the model "
            f"given is {have!r} (sha256 {got[:12]}…): a style only fits the exact model it was tuned on. Leave the model "
            "out to use the style's own base, or fit the style again on this model (`handwriting style fit ... --model NAME`)"
        )
    params = dict(model.named_parameters())
    for k, t in st.tensors.items():
        if k not in params:
            raise StyleError(f"{st.where}: tensor {k!r} is not a parameter of {type(model).__name__}; the file does not "
                             f"belong to this model. {_REFIT}")
        if tuple(params[k].shape) != tuple(t.shape):
            raise StyleError(f"{st.where}: tensor {k!r} has shape {list(t.shape)} but the model's is "
                             f"{list(params[k].shape)}; the file does not belong to this model. {_REFIT}")
        if not torch.isfinite(t).all():
            raise StyleError(f"{st.where}: tensor {k!r} holds non-finite numbers; {_REFIT}")
    styled = copy.deepcopy(model)
    sparams = dict(styled.named_parameters())
    with torch.no_grad():
        for k, t in st.tensors.items():
            p = sparams[k]
            t = t.to(dtype=p.dtype, device=p.device)
            if strength == 1:
                p.copy_(t)
            else:
                p.lerp_(t, float(strength))
    base = getattr(model, "pretrained_name", None) or st.base_name or type(model).__name__
    styled.pretrained_name = f"{base}+{st.name}"
    styled.style = st
    if isinstance(getattr(styled, "meta", None), dict):
        styled.meta["style"] = {k: v for k, v in st.meta.items() if k != "tensors"}
    return styled


def _load_base(name: str, device: str):
    from . import checkpoint as ckpt
    from . import pretrained

    weights, _ = ckpt.model_paths(name)
    if any(c in name for c in "/\\") or weights.is_file():
        return ckpt.load_model(weights, device=device)[0]
    return pretrained.load_pretrained(name, device=device)


def load_style(style: StyleFile | str | os.PathLike, model: Any = None, device: str = "cpu",
               strength: float = 1.0) -> torch.nn.Module:
    """The style's base model (``model``: a module, or a name/path to load instead of the one the style
    records) with the style applied (at ``strength``, see :func:`apply_style`), in eval mode."""
    st = _as_style(style)
    if isinstance(model, torch.nn.Module):
        base = model
    else:
        name = os.fspath(model) if model is not None else st.base_name
        if not name:
            raise StyleError(f"{st.where} records no base model name (it was fitted to a model in memory); pass the "
                             "base model: load_style(path, model=...) or write(..., model=..., style=...)")
        try:
            base = _load_base(name, device)
        except HandwritingError as exc:
            raise StyleError(f"{st.where}: its base model {name!r} cannot be loaded ({exc}); if it has moved, name "
                             "it: write(..., model=PATH, style=...) or --model PATH") from None
    return apply_style(st, base, strength).eval()


def __getattr__(name: str):  # PEP 562: fit_style lives a layer up (it needs the trainer), import it on first use
    if name == "fit_style":
        import importlib

        return importlib.import_module(f"{__package__}.style_fit").fit_style
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
