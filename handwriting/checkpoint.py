"""Checkpoints without pickle: model weights in safetensors, everything else in JSON.

Two kinds of file, both written atomically (:func:`handwriting._io.atomic_write`):

**Model** — ``<stem>.safetensors`` (the weights, optionally stored in bf16/fp16) plus a JSON sidecar
``<stem>.json`` holding the model class name, its dataclass config, the alphabet, the stroke
normaliser, the tokenizer (when the model has one), training metadata (command line, data checksum, git
commit, steps, wall time, hardware), validation metrics and the SHA-256 of the weights file.  The same
description (minus the checksum) is also embedded in the safetensors header, so a weights file on its own
still says what it is.  :func:`save_model` writes them; :func:`load_model` rebuilds the model, refusing a
weights file whose checksum does not match its sidecar.

**Training state** (for an exact resume) — one ``.safetensors`` file whose tensors are the model weights,
the optimizer state flattened to named tensors and the RNG states, and whose header metadata holds the rest
as JSON (optimizer hyper-parameters, scheduler state, data-sampler position, step, epoch, best metric, the
training config).  One file, so it is replaced atomically as a whole: a crash never pairs new weights with
an old optimizer.  See :func:`save_training_state`, :func:`load_training_state`.

Nothing here unpickles anything, so opening a checkpoint from someone else cannot run code.  Model classes
are looked up in a registry of names (:data:`MODEL_REGISTRY`, extended with :func:`register_model`), never
imported from a path found in a file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import os
import platform
import random
import subprocess
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_write
from .errors import HandwritingError

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
]

FORMAT = "handwriting.model"
STATE_FORMAT = "handwriting.training-state"
FORMAT_VERSION = 1


class CheckpointError(HandwritingError):
    """A checkpoint that is missing, corrupt, mismatched or of an unknown kind; the message says what to do."""


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
# dataclass configs <-> JSON


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    raise TypeError(f"cannot store {type(value).__name__} value {value!r} in JSON")


def config_to_dict(config: Any) -> dict:
    """A dataclass config as a JSON-ready dict (``dataclasses.asdict`` with tuples as lists)."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise CheckpointError(f"model.config must be a dataclass instance, got {type(config).__name__}")
    return _jsonable(config)


def _coerce(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if args and len(args) == len(value):
            return tuple(_coerce(v, a) for v, a in zip(value, args))
        return tuple(value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        for a in args:
            if a is type(None):
                continue
            if dataclasses.is_dataclass(a) and isinstance(value, dict):
                return config_from_dict(a, value)
            if typing.get_origin(a) is tuple and isinstance(value, list):
                return _coerce(value, a)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_from_dict(cls: type, data: dict) -> Any:
    """Rebuild dataclass ``cls`` from :func:`config_to_dict` output (lists back to tuples where the field
    is a tuple; unknown keys are an error, missing keys take the field defaults)."""
    if not isinstance(data, dict):
        raise CheckpointError(f"config for {cls.__name__}: expected a JSON object, got {type(data).__name__}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolved forward references: fall back to the defaults' types
        hints = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(
            f"config for {cls.__name__} has fields this version does not know: {', '.join(unknown)} "
            "(the checkpoint was written by a newer version of handwriting; upgrade it)"
        )
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        if not f.init:
            continue
        hint = hints.get(name)
        if hint is None and f.default is not dataclasses.MISSING and isinstance(f.default, tuple):
            hint = tuple
        kwargs[name] = _coerce(value, hint) if hint is not None else value
        if hint is tuple and isinstance(value, list):
            kwargs[name] = tuple(value)
    return cls(**kwargs)


def _config_class(model_cls: type, meta_model: dict) -> type:
    declared = getattr(model_cls, "config_class", None)
    if isinstance(declared, type):
        return declared
    qualname = meta_model.get("config_class")
    module = importlib.import_module(model_cls.__module__)
    obj: Any = module
    for part in str(qualname or "").split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    if isinstance(obj, type) and dataclasses.is_dataclass(obj):
        return obj
    hints = {}
    try:
        hints = typing.get_type_hints(model_cls.__init__)
    except Exception:
        pass
    for key in ("config", "cfg"):
        if isinstance(hints.get(key), type) and dataclasses.is_dataclass(hints[key]):
            return hints[key]
    raise CheckpointError(
        f"cannot find the config class {qualname!r} of {model_cls.__name__} in {model_cls.__module__}; "
        "set a `config_class` attribute on the model class"
    )


# ----------------------------------------------------------------------------------------------------------
# provenance


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


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
    try:
        from . import __version__

        meta["handwriting_version"] = __version__
    except ImportError:  # pragma: no cover
        pass
    for k, v in extra.items():
        meta[k] = _jsonable(v)

    from safetensors.torch import save as st_save

    header = {"format": "pt", "handwriting": json.dumps(meta, sort_keys=True)}
    blob = st_save(tensors, metadata=header)
    with atomic_write(weights_path, "wb") as f:
        f.write(blob)
    meta["weights"] = {
        "file": weights_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "dtype": sorted(stored)[0] if len(stored) == 1 else sorted(stored),
    }
    with atomic_write(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=False, allow_nan=True)
        f.write("\n")
    return weights_path


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON sidecar of a model checkpoint (``path``: stem, ``.safetensors`` or ``.json``)."""
    _, meta_path = model_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: no such checkpoint description (expected beside the .safetensors file)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not a readable JSON checkpoint description ({exc}); re-save the model") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a handwriting model description (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: written by a newer version of handwriting (format {meta['format_version']}); upgrade")
    return meta


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


def _attach(model: torch.nn.Module, meta: dict) -> None:
    """Give a loaded model its alphabet, normaliser and tokenizer back as attributes."""
    from .strokes import Normalizer

    if meta.get("normalizer") is not None:
        model.normalizer = Normalizer.from_dict(meta["normalizer"])
    if meta.get("alphabet") is not None and getattr(model, "alphabet", None) is None:
        chars = meta["alphabet"]
        try:
            from .datasets.torch_data import Alphabet

            model.alphabet = Alphabet(chars)
        except ImportError:
            model.alphabet = chars
    tok = meta.get("tokenizer")
    if tok is not None and getattr(model, "tokenizer", None) is None:
        try:
            from .models.tokenizer import tokenizer_from_dict

            model.tokenizer = tokenizer_from_dict(tok)
        except (ImportError, ValueError, AttributeError):  # AttributeError: a read-only property
            pass
    model.meta = meta


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
        meta = read_meta(meta_path)
    elif verify:
        raise CheckpointError(
            f"{meta_path}: missing, so the weights in {weights_path.name} cannot be verified; restore the .json "
            "sidecar, or load with verify=False to trust the description inside the weights file"
        )
    else:
        meta = None
    if verify:
        expected = (meta.get("weights") or {}).get("sha256")
        actual = sha256_file(weights_path)
        if expected != actual:
            raise CheckpointError(
                f"{weights_path}: SHA-256 {actual[:12]}… does not match {meta_path.name} ({str(expected)[:12]}…): "
                "the weights are corrupt or belong to another checkpoint; download or re-save the model"
            )
    tensors, header = _read_safetensors(weights_path)
    if meta is None:
        try:
            meta = json.loads(header["handwriting"])
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{weights_path}: no handwriting description in the header; restore the .json sidecar") from exc
    model_meta = meta.get("model") or {}
    cls = model_class(str(model_meta.get("class")))
    cfg_data = model_meta.get("config")
    if cfg_data is None:
        model = cls()
    else:
        cfg = config_from_dict(_config_class(cls, model_meta), cfg_data)
        model = cls(cfg)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: weights do not fit {cls.__name__}({model_meta.get('config')}): {exc}") from exc
    _attach(model, meta)
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


def save_training_state(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write one safetensors file holding ``tensors`` with ``meta`` (JSON) in its header, atomically."""
    from safetensors.torch import save as st_save

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    body = {"format": STATE_FORMAT, "format_version": FORMAT_VERSION, **meta}
    blob = st_save(
        {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()},  # clone: tied weights
        metadata={"format": "pt", "handwriting": json.dumps(_jsonable(body), allow_nan=True)},
    )
    with atomic_write(path, "wb") as f:
        f.write(blob)
    return path


def load_training_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
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
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a handwriting training state (format {meta.get('format')!r})")
    return tensors, meta
