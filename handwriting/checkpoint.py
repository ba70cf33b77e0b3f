"""Checkpoints without pickle: model weights in safetensors, everything else in JSON.

Two kinds of file, both written atomically (never half a file, never half a pair):

**Model** — ``<stem>.safetensors`` (the weights, optionally stored in bf16/fp16) plus a JSON sidecar
``<stem>.json`` holding the model class name, its dataclass config, the alphabet, the stroke
normaliser, the tokenizer (when the model has one), training metadata (command line, data checksum, git
commit, steps, wall time, hardware), validation metrics and the SHA-256 of the weights file.  The same
description (minus the checksum) is also embedded in the safetensors header, so a weights file on its own
still says what it is.  :func:`save_model` writes the two as a pair (both or neither: see
:func:`_write_together`); :func:`load_model` rebuilds the model, refusing a weights file whose checksum does
not match its sidecar.  A description is checked field by field against the model's config dataclass (by
:mod:`handwriting.descriptions`), and the model it describes is sized on the meta device, before anything is
allocated (:data:`MAX_SIZE`, :data:`MAX_LAYERS`, :data:`MAX_ELEMENTS`): a damaged or hand-edited ``.json``
gets an error naming the file, the field and the value, never a traceback or a 600 GB allocation.

**Training state** (for an exact resume) — one ``.safetensors`` file whose tensors are the model weights,
the optimizer state flattened to named tensors and the RNG states, and whose header metadata holds the rest
as JSON (optimizer hyper-parameters, scheduler state, data-sampler position, step, epoch, best metric, the
training config), with a SHA-256 of both that :func:`load_training_state` verifies.  One file, so it is
replaced atomically as a whole: a crash never pairs new weights with an old optimizer.  See
:func:`save_training_state`, :func:`load_training_state`.

Nothing here unpickles anything, so opening a checkpoint from someone else cannot run code.  Model classes
are looked up in a registry of names (:data:`MODEL_REGISTRY`, extended with :func:`register_model`), never
imported from a path found in a file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import platform
import random
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_write, sha256_file
from .descriptions import (  # defined there, re-exported here (where they are imported from)
    _FIX,
    MAX_ELEMENTS,
    MAX_LAYERS,
    MAX_SIZE,
    CheckpointError,
    _check_nested_ints,
    _config_class,
    _jsonable,
    _Mismatch,
    _show,
    config_from_dict,
    config_to_dict,
)
from .errors import DataError, HandwritingError, OutputError

__all__ = [
    "CheckpointError",
    "MODEL_REGISTRY",
    "register_model",
    "model_class",
    "save_model",
    "load_model",
    "read_meta",
    "model_paths",
    "sha256_file",
    "config_to_dict",
    "config_from_dict",
    "flatten_optimizer_state",
    "unflatten_optimizer_state",
    "rng_state",
    "set_rng_state",
    "save_training_state",
    "load_training_state",
    "git_commit",
    "hardware_info",
    "portable_path",
    "MAX_SIZE",
    "MAX_LAYERS",
    "MAX_ELEMENTS",
]

FORMAT = "handwriting.model"
STATE_FORMAT = "handwriting.training-state"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------
# registry: class name -> "module:attribute" (imported lazily) or the class itself

MODEL_REGISTRY: dict[str, Any] = {
    "PredictionNetwork": "handwriting.models.graves:PredictionNetwork",
    "SynthesisNetwork": "handwriting.models.graves:SynthesisNetwork",
    "CursiveTransformer": "handwriting.models.transformer:CursiveTransformer",
    "MDNTransformer": "handwriting.models.mdn_transformer:MDNTransformer",
    "Recognizer": "handwriting.models.recognizer:Recognizer",
}


def register_model(cls: type, name: str | None = None) -> type:
    """Make ``cls`` loadable by :func:`load_model` under ``name`` (default: its class name).  Usable as a
    decorator."""
    MODEL_REGISTRY[name or cls.__name__] = cls
    return cls


def model_class(name: str) -> type:
    """The class registered under ``name`` (importing its module on first use)."""
    entry = MODEL_REGISTRY.get(name)
    if entry is None:
        raise CheckpointError(
            f"unknown model class {name!r}; known: {', '.join(sorted(MODEL_REGISTRY))} "
            "(a newer version of handwriting may be needed, or call checkpoint.register_model)"
        )
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise CheckpointError(f"model class {name!r} needs {module_name}, which is not available: {exc}") from exc
        entry = getattr(module, attr)
        MODEL_REGISTRY[name] = entry
    return entry


def _registered_name(model: torch.nn.Module) -> str:
    name = type(model).__name__
    entry = MODEL_REGISTRY.get(name)
    if entry is None:
        MODEL_REGISTRY[name] = type(model)  # saving registers it, so a save/load in one process round-trips
    elif not isinstance(entry, str) and entry is not type(model):
        raise CheckpointError(f"another class is already registered as {name!r}; register this one under a new name")
    return name


# ----------------------------------------------------------------------------------------------------------
# provenance


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit of the repository holding ``path`` (default: this package), with ``-dirty`` when the
    working tree has changes; ``None`` outside a git checkout or without git."""
    cwd = Path(path) if path else Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "") if out else None


def hardware_info(device: str | torch.device | None = None) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    dev = torch.device(device) if device is not None else None
    if dev is not None:
        info["device"] = str(dev)
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        idx = dev.index if dev is not None and dev.index is not None else torch.cuda.current_device()
        info["gpu"] = torch.cuda.get_device_name(idx)
        info["cuda"] = torch.version.cuda
    return info


def portable_path(path: str | os.PathLike) -> str:
    """A path to record in a description: relative as given, relative to the working directory when under
    it, else just the file's name (an absolute path names one machine's folders, meaningless elsewhere)."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return p.name


# ----------------------------------------------------------------------------------------------------------
# models

_DTYPES = {
    None: None,
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, sidecar)`` for a stem, a ``.safetensors`` path or a ``.json`` path."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _state_tensors(model: torch.nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    out = {}
    for k, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[k] = t.contiguous().clone()  # clone: tied weights must not share storage in safetensors
    return out


def _describe(obj: Any, kind: str) -> Any:
    if obj is None:
        return None
    if kind == "alphabet":
        if isinstance(obj, str):
            return obj
        for attr in ("chars", "characters"):
            v = getattr(obj, attr, None)
            if v is not None:
                return "".join(v) if not isinstance(v, str) else v
        if isinstance(obj, (list, tuple)):
            return "".join(obj)
        raise CheckpointError(f"cannot store alphabet of type {type(obj).__name__} (expected .chars)")
    if isinstance(obj, dict):
        return _jsonable(obj)
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    raise CheckpointError(f"cannot store {kind} of type {type(obj).__name__} (expected .to_dict())")


def _write_together(files: dict[Path, bytes]) -> None:
    """Write several files as a set, all or none: each goes to a temporary file beside it and is flushed to
    disk, and only when every one is complete are they renamed into place.  A failure while writing (a full
    disk) removes the temporaries and leaves the previous files untouched; only a failure between the
    renames can leave a mixed set, which the caller's checksums then reveal (and the error says so)."""
    temps: dict[Path, str] = {}

    def discard() -> None:
        for tmp in temps.values():
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    names = " and ".join(p.name for p in files)
    umask = os.umask(0)
    os.umask(umask)
    path = next(iter(files))
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temps[path] = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # on disk before any rename: a crash cannot leave an empty file in place
            os.chmod(temps[path], 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    except BaseException as exc:
        discard()
        if isinstance(exc, OSError):
            raise OutputError(
                f"{path}: cannot be written ({exc.strerror or exc}); the previous {names} are unchanged. Free "
                "disk space (or fix the folder's permissions) and save again"
            ) from exc
        raise
    done: list[Path] = []
    try:
        for path, tmp in list(temps.items()):
            os.replace(tmp, path)
            done.append(path)
            del temps[path]
    except BaseException as exc:
        discard()
        if isinstance(exc, OSError):
            mixed = f"{', '.join(p.name for p in done)} replaced but {path.name} not: they no longer belong together"
            raise OutputError(
                f"{path}: cannot be replaced ({exc.strerror or exc}); "
                + (f"{mixed} (loading refuses them)" if done else f"the previous {names} are unchanged")
                + ". Fix the cause and save again"
            ) from exc
        raise


def save_model(
    path_stem: str | os.PathLike,
    model: torch.nn.Module,
    extra: dict | None = None,
    dtype: str | None = None,
) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; return the weights path.

    ``extra`` may hold ``alphabet`` (an ``Alphabet`` or a string of characters), ``normalizer``
    (a :class:`~handwriting.strokes.Normalizer` or its dict), ``tokenizer`` (anything with ``to_dict``),
    ``training`` (dict: command, data checksum, git commit, steps, wall time, hardware, ...), ``metrics``
    (dict) and any other JSON-able keys, which are stored as they are.  Alphabet, normaliser and tokenizer
    default to the model's attributes of those names.  ``dtype`` (``"bf16"``/``"fp16"``) stores floating
    point weights at half size; they are cast back to the model's dtype on load.
    """
    if dtype not in _DTYPES:
        raise CheckpointError(f"dtype must be one of fp32, bf16, fp16, got {dtype!r}")
    extra = dict(extra or {})
    weights_path, meta_path = model_paths(path_stem)
    name = _registered_name(model)
    config = getattr(model, "config", None)
    describe = {}
    for key in ("alphabet", "normalizer", "tokenizer"):
        value = extra.pop(key, None)
        if value is None:
            value = getattr(model, key, None)
        describe[key] = _describe(value, key)
    tensors = _state_tensors(model, _DTYPES[dtype])
    stored = {str(t.dtype).replace("torch.", "") for t in tensors.values() if t.is_floating_point()}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {
            "class": name,
            "config_class": type(config).__qualname__ if config is not None else None,
            "config": config_to_dict(config) if config is not None else None,
            "parameters": int(sum(p.numel() for p in model.parameters())),
        },
        **describe,
        "training": _jsonable(extra.pop("training", {})),
        "metrics": _jsonable(extra.pop("metrics", {})),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from . import __version__

    meta["handwriting_version"] = __version__
    for k, v in extra.items():
        meta[k] = _jsonable(v)

    from safetensors.torch import save as st_save

    header = {"format": "pt", "handwriting": json.dumps(meta, sort_keys=True)}
    blob = st_save(tensors, metadata=header)
    meta["weights"] = {
        "file": weights_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "dtype": sorted(stored)[0] if len(stored) == 1 else sorted(stored),
    }
    text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=True) + "\n"
    # both or neither: best.safetensors must never be replaced without its best.json
    _write_together({weights_path: blob, meta_path: text.encode("utf-8")})
    return weights_path


def _check_meta(meta: Any, where: str | os.PathLike) -> dict:
    """``meta`` if it is a well-formed model description, else a :class:`CheckpointError` naming ``where``,
    the field and the fix.  (The config itself is checked against its dataclass by :func:`config_from_dict`.)"""

    def bad(field: str, value: Any, expected: str) -> CheckpointError:
        return CheckpointError(f"{where}: {field} is {_show(value)}, expected {expected}; {_FIX}")

    if not isinstance(meta, dict):
        raise bad("the top level", meta, "a JSON object (a model description)")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a handwriting model description (format {_show(meta.get('format'))}, expected {FORMAT!r})")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise bad("format_version", version, f"an integer from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where}: written by a newer version of handwriting (format_version {version}); upgrade handwriting")
    model = meta.get("model")
    if not isinstance(model, dict):
        raise bad("model", model, "a JSON object with the model's class and config")
    if not isinstance(model.get("class"), str) or not model["class"]:
        raise bad("model.class", model.get("class"), f"a model class name ({', '.join(sorted(MODEL_REGISTRY))})")
    for key, ok, expected in [
        ("config", lambda v: isinstance(v, dict), "a JSON object"),
        ("config_class", lambda v: isinstance(v, str), "a class name"),
        ("parameters", lambda v: type(v) is int and 0 <= v <= MAX_ELEMENTS, f"an integer from 0 to {MAX_ELEMENTS}"),
    ]:
        if model.get(key) is not None and not ok(model[key]):
            raise bad(f"model.{key}", model[key], expected)
    chars = meta.get("alphabet")
    if chars is not None and (not isinstance(chars, str) or not 0 < len(chars) == len(set(chars)) <= MAX_SIZE):
        raise bad("alphabet", chars, "a string of characters, each once, or null")
    if meta.get("normalizer") is not None:
        from .strokes import Normalizer

        try:
            Normalizer.from_dict(meta["normalizer"])
        except (DataError, ValueError) as exc:
            raise bad("normalizer", meta["normalizer"], '{"mean": [mx, my], "std": [sx, sy]} with std > 0, or null') from exc
    tok = meta.get("tokenizer")
    if tok is not None:
        try:
            if not isinstance(tok, dict) or not isinstance(tok.get("kind"), str):
                raise _Mismatch("a JSON object with a 'kind'")
            _check_nested_ints(tok)  # its sizes become numpy arrays when it is rebuilt
        except _Mismatch as exc:
            raise bad("tokenizer", tok, f"{exc.args[0]}, or null") from None
    for key in ("training", "metrics", "weights"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise bad(key, meta[key], "a JSON object")
    _model_spec(meta, where)  # the class is known and the config fits its dataclass
    return meta


def _model_spec(meta: dict, where: str | os.PathLike) -> tuple[type, Any]:
    """The model class and its config (``None`` when the description has none) of a checked description."""
    model = meta["model"]
    try:
        cls = model_class(model["class"])
        cfg_class = _config_class(cls, model) if model.get("config") is not None else None
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: model.class: {exc}") from exc
    return cls, None if cfg_class is None else config_from_dict(cfg_class, model["config"], where)


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON sidecar of a model checkpoint (``path``: stem, ``.safetensors`` or ``.json``), checked to be
    a well-formed description (:class:`CheckpointError` naming the file and field if not)."""
    _, meta_path = model_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: no such checkpoint description (expected beside the .safetensors file)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not a readable JSON checkpoint description ({exc}); {_FIX}") from exc
    return _check_meta(meta, meta_path)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({exc})") from exc
    try:
        tensors = st_load(blob)
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + n])
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc}); the file is corrupt, fetch or re-save it") from exc
    return tensors, header.get("__metadata__", {}) or {}


def _attach(model: torch.nn.Module, meta: dict, where: str | os.PathLike) -> None:
    """Give a loaded model its alphabet, normaliser and tokenizer back as attributes."""
    from .strokes import Normalizer

    if meta.get("normalizer") is not None:
        model.normalizer = Normalizer.from_dict(meta["normalizer"])
    if meta.get("alphabet") is not None and getattr(model, "alphabet", None) is None:
        chars = meta["alphabet"]
        from .datasets.torch_data import Alphabet

        model.alphabet = Alphabet(chars)
    tok = meta.get("tokenizer")
    if tok is not None and getattr(model, "tokenizer", None) is None:
        from .models.tokenizer import tokenizer_from_dict

        try:
            model.tokenizer = tokenizer_from_dict(tok)
        except AttributeError:  # a read-only property (it comes from the config)
            pass
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{where}: tokenizer {_show(tok)} cannot be rebuilt ({exc}); {_FIX}") from exc
    model.meta = meta


def _build(cls: type, cfg: Any, tensors: dict[str, torch.Tensor], where: Path, weights_path: Path) -> torch.nn.Module:
    """``cls(cfg)``, after building it on the meta device (which allocates nothing) to check that it is of a
    sane size and that the weights fit it: a config saying ``hidden: 200000`` is refused in milliseconds
    instead of allocating hundreds of gigabytes."""
    make = (lambda: cls(cfg)) if cfg is not None else cls
    try:
        with torch.device("meta"):
            probe = make()
    except (ValueError, TypeError, AssertionError, HandwritingError) as exc:  # the model's own checks
        raise CheckpointError(f"{where}: model.config is not valid for {cls.__name__}: {exc}; {_FIX}") from exc
    except Exception:  # a model that cannot be built on the meta device: the field limits must do
        probe = None
    if probe is not None:
        shapes = {k: tuple(t.shape) for k, t in probe.state_dict().items()}
        n = sum(int(np.prod(s)) for s in shapes.values())
        if n > MAX_ELEMENTS:
            raise CheckpointError(
                f"{where}: model.config describes a {cls.__name__} of {n:,} parameters, more than the "
                f"{MAX_ELEMENTS:,} a checkpoint may hold; {_FIX}"
            )
        stored = {k: tuple(t.shape) for k, t in tensors.items()}
        if shapes != stored:
            diff = sorted(k for k in set(shapes) | set(stored) if shapes.get(k) != stored.get(k))
            detail = ", ".join(f"{k}: {stored.get(k, 'absent')} in the file, {shapes.get(k, 'absent')} for the config"
                               for k in diff[:3])
            raise CheckpointError(
                f"{weights_path}: weights do not fit {cls.__name__}({_show(config_to_dict(cfg)) if cfg is not None else ''}) "
                f"described by {where.name} ({detail}{', ...' if len(diff) > 3 else ''}); the two files do not belong "
                "together: restore the matching pair or save the model again"
            )
    return make()


#: models loaded by :func:`cached_load`, by (kind, resolved path, modification time, device)
LOADED: dict[tuple, Any] = {}


def cached_load(kind: str, weights: str | os.PathLike, device: str, load) -> Any:
    """``load()``'s result, kept by ``kind``, the resolved path and modification time of ``weights`` and
    ``device``: one object per file and device however often it is asked for (a writer, a reranker called on
    every ``write``), loaded again once the file changes.  Callers that change a model in place must copy it
    first.  ``LOADED.clear()`` forgets them all."""
    w = Path(weights)
    key = (kind, str(w.resolve()), w.stat().st_mtime_ns if w.is_file() else 0, str(device))
    if key not in LOADED:
        LOADED[key] = load()
    return LOADED[key]


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", verify: bool = True
) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model saved by :func:`save_model`; return ``(model, meta)`` with the model in eval mode on
    ``device``.  With ``verify`` (default) the weights' SHA-256 must match the sidecar, else
    :class:`CheckpointError`.  A weights file without its sidecar loads only with ``verify=False``, from the
    description embedded in its header."""
    weights_path, meta_path = model_paths(path)
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: no such weights file; train a model (`handwriting train ...`) or fix the path")
    if meta_path.is_file():
        meta, where = read_meta(meta_path), meta_path
    elif verify:
        raise CheckpointError(
            f"{meta_path}: missing, so the weights in {weights_path.name} cannot be verified; restore the .json "
            "sidecar, or load with verify=False to trust the description inside the weights file"
        )
    else:
        meta, where = None, weights_path
    if verify:
        expected = (meta.get("weights") or {}).get("sha256")
        if not isinstance(expected, str):
            raise CheckpointError(
                f"{meta_path}: weights.sha256 is missing, so {weights_path.name} cannot be verified; {_FIX}, "
                "or load with verify=False"
            )
        actual = sha256_file(weights_path)
        if expected != actual:
            raise CheckpointError(
                f"{weights_path}: SHA-256 {actual[:12]}… does not match {meta_path.name} ({expected[:12]}…): "
                "the weights are corrupt or belong to another checkpoint (as after a save interrupted between "
                "the two files); download or re-save the model"
            )
    tensors, header = _read_safetensors(weights_path)
    if meta is None:
        try:
            meta = json.loads(header["handwriting"])
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{weights_path}: no handwriting description in the header; restore the .json sidecar") from exc
        meta = _check_meta(meta, f"{weights_path} (its header)")
    cls, cfg = _model_spec(meta, where)
    model = _build(cls, cfg, tensors, Path(where), weights_path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: weights do not fit {cls.__name__}({meta['model'].get('config')}): {exc}") from exc
    _attach(model, meta, where)
    model.to(device)
    model.eval()
    return model, meta


# ----------------------------------------------------------------------------------------------------------
# training state: optimizer, scheduler, RNG, data position


def flatten_optimizer_state(state_dict: dict, prefix: str = "optim.") -> tuple[dict[str, torch.Tensor], dict]:
    """``optimizer.state_dict()`` → (named tensors, JSON-able rest).  Per-parameter tensors become
    ``{prefix}state.{param_id}.{key}``; non-tensor per-parameter values and ``param_groups`` go to JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, pstate in state_dict.get("state", {}).items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}state.{pid}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = _jsonable(value)
    rest = {"param_groups": _jsonable(state_dict.get("param_groups", [])), "scalars": scalars}
    return tensors, rest


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict, prefix: str = "optim.") -> dict:
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if not name.startswith(prefix + "state."):
            continue
        pid, key = name[len(prefix) + 6 :].split(".", 1)
        state.setdefault(int(pid), {})[key] = t
    for pid, values in rest.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in rest.get("param_groups", []):
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def rng_state(prefix: str = "rng.") -> tuple[dict[str, torch.Tensor], dict]:
    """Every global RNG (torch CPU, CUDA, numpy, python) as (tensors, JSON)."""
    tensors = {f"{prefix}torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{prefix}cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors[f"{prefix}numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    rest = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }
    return tensors, rest


def set_rng_state(tensors: dict[str, torch.Tensor], rest: dict, prefix: str = "rng.") -> None:
    torch.set_rng_state(tensors[f"{prefix}torch"].to(torch.uint8))
    cuda = sorted((k for k in tensors if k.startswith(f"{prefix}cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k].to(torch.uint8) for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    n = rest["numpy"]
    np.random.set_state(
        (n["kind"], tensors[f"{prefix}numpy"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = rest["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def _state_digest(tensors: dict[str, torch.Tensor], meta_json: str) -> str:
    """SHA-256 of a training state: its JSON part as stored, then every tensor's name, dtype, shape and
    bytes in name order (independent of how safetensors lays the file out)."""
    h = hashlib.sha256(meta_json.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # raw bytes of any dtype (bf16 has no numpy type)
    return h.hexdigest()


def save_training_state(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write one safetensors file holding ``tensors`` with ``meta`` (JSON) in its header and a SHA-256 of
    both, atomically."""
    from safetensors.torch import save as st_save

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    body = json.dumps(_jsonable({"format": STATE_FORMAT, "format_version": FORMAT_VERSION, **meta}), allow_nan=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}  # clone: tied weights
    blob = st_save(tensors, metadata={"format": "pt", "handwriting": body, "sha256": _state_digest(tensors, body)})
    with atomic_write(path, "wb") as f:
        f.write(blob)
    return path


def load_training_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, meta)`` of a state written by :func:`save_training_state` (a directory holding
    ``state.safetensors``, or the file), after checking its SHA-256: a damaged state is refused rather than
    resumed from.  States written before the checksum existed load with a warning."""
    path = Path(path)
    if path.is_dir():
        path = path / "state.safetensors"
    elif path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from (expected the state.safetensors a run writes)")
    tensors, header = _read_safetensors(path)
    try:
        meta = json.loads(header["handwriting"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a handwriting training state") from exc
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a handwriting training state (format {_show(meta.get('format') if isinstance(meta, dict) else meta)})")
    expected = header.get("sha256")
    if expected is None:
        warnings.warn(f"{path}: written before training states carried a checksum, so it cannot be checked for damage",
                      UserWarning, stacklevel=2)
    elif expected != _state_digest(tensors, header["handwriting"]):
        raise CheckpointError(
            f"{path}: the training state is damaged (its SHA-256 does not match the one recorded when it was saved), "
            "so resuming from it would continue from corrupt weights or optimizer state. Resume from an earlier "
            f"copy of the state if you kept one, or start the run over without --resume (to keep what it learnt, "
            f"from its last saved model: `--init {path.parent / 'last'}`, which checks its own checksum)"
        )
    return tensors, meta
