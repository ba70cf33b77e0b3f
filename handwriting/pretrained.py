"""Pretrained models by name: ``load_pretrained("graves-synthesis-bigbank")``, ``handwriting models``.

A pretrained model is a pair of files written by :func:`handwriting.checkpoint.save_model` —
``<name>.safetensors`` (the weights) and ``<name>.json`` (what the model is, how it was trained, its
validation NLL and the SHA-256 of the weights) — in a *pretrained directory*: the directories named by
``$HANDWRITING_PRETRAINED`` (separated by ``os.pathsep``), then the repository's ``data/pretrained``.
The checksum is verified on every load: a damaged, truncated or swapped weights file is refused with a
message naming the file and what to do.

To make a model of your own available by name, train it and copy its two files::

    handwriting train graves --data bigbank --out runs/graves
    cp runs/graves/best.safetensors data/pretrained/my-graves.safetensors
    cp runs/graves/best.json        data/pretrained/my-graves.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .errors import HandwritingError

__all__ = [
    "DEFAULT_MODEL", "PretrainedError", "pretrained_dirs", "list_pretrained", "find_pretrained", "load_pretrained",
    "publish",
]

DEFAULT_MODEL = "graves-synthesis-bigbank"  # what write() uses when no model is named
ALIASES = {  # short names for the command line: `handwriting write "hi" --model transformer`
    "graves": "graves-synthesis-bigbank",
    "graves-prediction": "graves-prediction-bigbank",
    "transformer": "cursive-transformer-bigbank",
    "cursive-transformer": "cursive-transformer-bigbank",
    "mdn-transformer": "mdn-transformer-bigbank",
    "recognizer": "recognizer-bigbank",
}
REPO_DIR = Path(__file__).resolve().parents[1] / "data" / "pretrained"

EPILOG = """examples:
  handwriting models                 list the pretrained models (name, class, size, validation NLL)
  handwriting models --json          the same as JSON
  HANDWRITING_PRETRAINED=runs/pretrained handwriting models
  handwriting models --publish runs/graves/best my-graves --description "my first model"
"""


class PretrainedError(ckpt.CheckpointError):
    """No such pretrained model, or its files are damaged."""


def pretrained_dirs() -> list[Path]:
    """Where pretrained models are looked for, in order."""
    dirs = [Path(p).expanduser() for p in os.environ.get("HANDWRITING_PRETRAINED", "").split(os.pathsep) if p]
    return dirs + [REPO_DIR]


def _how_to_get(name: str) -> str:
    where = " or ".join(str(d) for d in pretrained_dirs())
    return (
        f"looked in {where}. Train one (`handwriting train graves --data bigbank --out runs/graves`) and copy "
        f"runs/graves/best.safetensors and best.json to {REPO_DIR}/{name}.safetensors and {name}.json, or pass "
        "model='runs/graves/best' (a checkpoint path) instead of a name"
    )


def list_pretrained() -> list[dict[str, Any]]:
    """Every pretrained model found (first directory wins for a repeated name): name, path, class,
    parameters, file size, validation NLL, training steps and data.  Reads only the JSON descriptions."""
    seen: dict[str, dict] = {}
    for d in pretrained_dirs():
        if not d.is_dir():
            continue
        for meta_path in sorted(d.glob("*.json")):
            name = meta_path.stem
            weights = meta_path.with_suffix(".safetensors")
            if name in seen or not weights.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                meta = {}
            if meta.get("format") != ckpt.FORMAT:
                continue
            metrics = meta.get("metrics") or {}
            training = meta.get("training") or {}
            seen[name] = {
                "name": name,
                "path": str(weights),
                "class": (meta.get("model") or {}).get("class"),
                "parameters": (meta.get("model") or {}).get("parameters"),
                "bytes": weights.stat().st_size,
                "valid_nll_per_sequence": metrics.get("nll_per_sequence"),
                "valid_nll_per_point": metrics.get("nll_per_point"),
                "steps": training.get("steps"),
                "data": training.get("data"),
                "description": meta.get("description"),
            }
    return list(seen.values())


def find_pretrained(name: str) -> Path:
    """The weights path of pretrained model ``name`` or of an alias in :data:`ALIASES` (``PretrainedError``
    listing what exists if none)."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise PretrainedError(f"{name!r} is not a pretrained model name (names have no slashes); pass a path to load_model instead")
    for candidate in (name, ALIASES.get(name)):
        for d in pretrained_dirs() if candidate else ():
            w = d / f"{candidate}.safetensors"
            if w.is_file() or (d / f"{candidate}.json").is_file():
                return w
    names = [m["name"] for m in list_pretrained()]
    have = f"available: {', '.join(names)}" if names else "no pretrained models are installed yet"
    raise PretrainedError(f"no pretrained model named {name!r} ({have}); {_how_to_get(name)}")


def _lfs_pointer(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(40).startswith(b"version https://git-lfs")
    except OSError:
        return False


def load_pretrained(name: str = DEFAULT_MODEL, device: str = "cpu"):
    """Load pretrained model ``name`` onto ``device`` (eval mode), after checking the SHA-256 of its
    weights against its description.  The model carries ``normalizer``, ``alphabet`` (and ``tokenizer``)
    attributes for :func:`handwriting.write`, and ``meta`` (the JSON description)."""
    weights = find_pretrained(name)
    meta_path = weights.with_suffix(".json")
    if not weights.is_file():
        raise PretrainedError(f"{weights}: missing (only {meta_path.name} is there); copy the weights file back or retrain")
    if _lfs_pointer(weights):
        raise PretrainedError(f"{weights}: is a Git LFS pointer, not the weights; run `git lfs pull` in the repository")
    try:
        model, _ = ckpt.load_model(weights, device=device, verify=True)
    except ckpt.CheckpointError as exc:
        raise PretrainedError(
            f"pretrained model {name!r} cannot be used: {exc}. Restore the files from the repository "
            f"(`git checkout -- {weights.parent}`) or retrain and copy them again"
        ) from exc
    model.pretrained_name = weights.stem
    return model


def publish(source: str | os.PathLike, name: str, description: str | None = None, directory: str | os.PathLike | None = None) -> Path:
    """Copy the checkpoint ``source`` (a stem such as ``runs/graves/best``, or its ``.safetensors``/``.json``)
    into a pretrained directory (default: the repository's ``data/pretrained``) as ``name``, after verifying
    its checksum.  The weights are copied byte for byte; the description gains ``description`` and the new
    file name.  Both files are written atomically.  Returns the new weights path."""
    import shutil

    from ._io import atomic_write

    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise PretrainedError(f"{name!r} is not a usable model name: use letters, digits and dashes, e.g. 'my-graves'")
    src_weights, src_meta = ckpt.model_paths(source)
    ckpt.load_model(src_weights, verify=True)  # refuse to publish a damaged checkpoint
    meta = json.loads(src_meta.read_text(encoding="utf-8"))
    out_dir = Path(directory) if directory is not None else REPO_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    with atomic_write(weights, "wb") as f, open(src_weights, "rb") as src:
        shutil.copyfileobj(src, f)
    meta["weights"]["file"] = weights.name
    if description is not None:
        meta["description"] = description
    meta["published_from"] = str(src_weights)
    with atomic_write(weights.with_suffix(".json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return weights


# ----------------------------------------------------------------------------------------------------------
# `handwriting models`


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def configure(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--verify", action="store_true", help="also load every model and check its checksum")
    parser.add_argument("--publish", nargs=2, metavar=("CHECKPOINT", "NAME"), help="copy a trained checkpoint (e.g. runs/graves/best) into data/pretrained as NAME")
    parser.add_argument("--description", help="with --publish: a one-line description stored with the model")


def run(args) -> int:
    if args.publish:
        path = publish(args.publish[0], args.publish[1], args.description)
        print(f"published {args.publish[0]} as {args.publish[1]}: {path}")
        return 0
    models = list_pretrained()
    if args.verify:
        for m in models:
            try:
                load_pretrained(m["name"])
                m["verified"] = True
            except HandwritingError as exc:
                m["verified"] = False
                m["error"] = str(exc)
    if args.json:
        print(json.dumps(models, indent=2))
        return 0 if all(m.get("verified", True) for m in models) else 1
    if not models:
        print(f"no pretrained models found; {_how_to_get('NAME')}")
        return 0
    rows = [("name", "class", "params", "size", "valid nats/seq", "nats/point", "steps")]
    for m in models:
        nll = m["valid_nll_per_sequence"]
        npp = m["valid_nll_per_point"]
        rows.append(
            (
                m["name"] + ("" if m.get("verified", True) else "  (DAMAGED)"),
                str(m["class"]),
                f"{m['parameters'] / 1e6:.2f}M" if m["parameters"] else "?",
                _fmt_bytes(m["bytes"]),
                f"{nll:.1f}" if isinstance(nll, (int, float)) else "-",
                f"{npp:.3f}" if isinstance(npp, (int, float)) else "-",
                str(m["steps"] if m["steps"] is not None else "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for m in models:
        if m.get("error"):
            print(f"{m['name']}: {m['error']}")
    return 0 if all(m.get("verified", True) for m in models) else 1
