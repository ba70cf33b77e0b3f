"""Reading a model description safely: its config dataclass to and from JSON, checked field by field.

A checkpoint's JSON description (see :mod:`handwriting.checkpoint`) comes from a file that may be damaged,
hand-edited or hostile.  :func:`config_from_dict` rebuilds a model's dataclass config from it, checking every
value against the field's annotation and the size limits (:data:`MAX_SIZE`, :data:`MAX_LAYERS`; the model it
describes is then sized against :data:`MAX_ELEMENTS` by :mod:`~handwriting.checkpoint`), so a bad file gets a
:class:`CheckpointError` naming the file, the field and the value, never a traceback or a 600 GB allocation.
:func:`config_to_dict` is the other direction.  :class:`CheckpointError` lives here (and is re-exported by
:mod:`handwriting.checkpoint`, where it is usually imported from) so that this module needs nothing from there.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import HandwritingError

__all__ = [
    "CheckpointError",
    "config_to_dict",
    "config_from_dict",
    "MAX_SIZE",
    "MAX_LAYERS",
    "MAX_ELEMENTS",
]

# What a description may ask for, checked before anything is allocated, so that a damaged or hostile .json
# cannot make load_model allocate gigabytes.  Every int in a model config is a size or a count: the largest
# in this project's models is ~1,200 (block_size), so 65,536 leaves room for big vocabularies.
MAX_SIZE = 1 << 16
# Layer counts (config fields named *layer*/*depth*) and per-layer lists: even on the meta device, building
# a module per layer takes seconds per thousand layers; the models here have at most 4.
MAX_LAYERS = 256
# Parameters + buffers of the model a config describes: 2e9 elements is 8 GB in fp32.
MAX_ELEMENTS = 2_000_000_000

_FIX = "restore the original file (shipped models: `git checkout -- data/pretrained`) or save the model again"


class CheckpointError(HandwritingError):
    """A checkpoint that is missing, corrupt, mismatched or of an unknown kind; the message says what to do."""


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


class _Mismatch(Exception):
    """A JSON value that is not of a config field's type; ``args[0]`` says what was expected."""


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)  # as the file spells it
    return text if len(text) <= 60 else text[:57] + "..."


def _check_nested_ints(value: Any) -> None:
    """Ints anywhere inside a dict/list (a tokenizer's settings) are sizes too: refuse absurd ones."""
    if isinstance(value, dict):
        for v in value.values():
            _check_nested_ints(v)
    elif isinstance(value, list):
        for v in value:
            _check_nested_ints(v)
    elif type(value) is int and abs(value) > MAX_SIZE:
        raise _Mismatch(f"a value whose numbers are at most {MAX_SIZE} (found {value})")


def _convert(value: Any, hint: Any, name: str, label: str) -> Any:
    """``value`` (as read from JSON) as a value of type ``hint``, or :class:`_Mismatch`; ``name`` is the
    field's name (for its limit), ``label`` its path in the file (for a nested config's messages)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        wanted = []
        for a in args:
            if a is type(None):
                wanted.append("null")
                continue
            try:
                return _convert(value, a, name, label)
            except _Mismatch as exc:
                wanted.append(exc.args[0])
        raise _Mismatch(" or ".join(wanted))
    if hint is bool:
        if type(value) is not bool:
            raise _Mismatch("true or false")
        return value
    if hint is int:
        cap = MAX_LAYERS if ("layer" in name or "depth" in name) else MAX_SIZE
        if type(value) is not int or not 0 <= value <= cap:  # bool is not an int here
            raise _Mismatch(f"an integer from 0 to {cap}")
        return value
    if hint is float:
        if type(value) not in (int, float) or not -1e300 < value < 1e300:  # also refuses NaN, inf
            raise _Mismatch("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Mismatch("a string")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Mismatch(f"a JSON object ({hint.__name__})")
        return config_from_dict(hint, value, field=label)
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, list) or len(value) > MAX_LAYERS:  # per-layer lists: see MAX_LAYERS
            raise _Mismatch(f"a list of at most {MAX_LAYERS} items")
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, int]: fixed length
            if len(args) != len(value):
                raise _Mismatch(f"a list of {len(args)} items")
            item_hints = args
        else:  # tuple[int, ...], list[int], bare tuple
            item_hints = [args[0] if args else None] * len(value)
        items = [_convert(v, h, name, label) for v, h in zip(value, item_hints)]
        return tuple(items) if tuple in (hint, origin) else items
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch("a JSON object")
        _check_nested_ints(value)
        return value
    return value  # a type JSON cannot hold: left to the dataclass to judge


def config_from_dict(cls: type, data: dict, where: str | os.PathLike | None = None, field: str = "model.config") -> Any:
    """Rebuild dataclass ``cls`` from :func:`config_to_dict` output, checking every value against the
    field's annotation (ints are sizes: 0..:data:`MAX_SIZE`; floats finite; lists back to tuples).  Unknown
    keys are an error; missing keys take the field defaults.  Any problem is a :class:`CheckpointError`
    naming ``where`` (the file), the field, the value and the fix."""
    at = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise CheckpointError(f"{at}{field} is {_show(data)}, expected a JSON object ({cls.__name__}); {_FIX}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolved forward references: fall back to the defaults' types
        hints = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CheckpointError(
            f"{at}{field} ({cls.__name__}) has fields this version does not know: {', '.join(unknown)} "
            "(the checkpoint was written by a newer version of handwriting; upgrade it)"
        )
    kwargs = {}
    for name, f in fields.items():
        if not f.init:
            continue
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CheckpointError(f"{at}{field}.{name} is missing ({cls.__name__} needs it); {_FIX}")
            continue
        hint = hints.get(name)
        if hint is None and isinstance(f.default, tuple):
            hint = tuple
        try:
            kwargs[name] = _convert(data[name], hint, name, f"{field}.{name}")
        except CheckpointError as exc:  # from a nested config: add the file
            raise CheckpointError(f"{at}{exc}") from None
        except _Mismatch as exc:
            raise CheckpointError(
                f"{at}{field}.{name} is {_show(data[name])}, expected {exc.args[0]} ({cls.__name__}.{name}); {_FIX}"
            ) from None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, HandwritingError) as exc:  # the dataclass's own checks (__post_init__)
        raise CheckpointError(f"{at}{field} is not a valid {cls.__name__}: {exc}; {_FIX}") from exc


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
