"""Pretrained models by name: ``load_pretrained("graves-synthesis-bigbank")``, ``handwriting models``.

A pretrained model is a pair of files written by :func:`handwriting.checkpoint.save_model` —
``<name>.safetensors`` (the weights) and ``<name>.json`` (what the model is, how it was trained, its
validation NLL and the SHA-256 of the weights) — in a *pretrained directory*: the directories named by
``$HANDWRITING_PRETRAINED`` (separated by ``os.pathsep``), then the repository's ``data/pretrained``.
The checksum is verified on every load: a damaged, truncated or swapped weights file is refused with a
message naming the file and what to do.

``handwriting models`` lists them.  One broken model (an unreadable or malformed description, a missing
file) never hides the others: it is listed as DAMAGED with its error on one line.  The listing exits 0 —
it only reports; ``handwriting models --verify`` also loads every model and exits 1 if any is broken.

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

DEFAULT_MODEL = "graves-synthesis-bigbank"  # what write() uses when no model is named: the most legible (README)
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
  handwriting models --verify        load each one and check its checksum (exit status 1 if any is broken)
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


def _entry(name: str, weights: Path, meta_path: Path) -> dict[str, Any] | None:
    """What ``handwriting models`` shows of one model; ``error`` says why it cannot be used.  ``None`` for a
    JSON file without weights that is not a model description (not ours to report)."""
    entry: dict[str, Any] = {"name": name, "path": str(weights), "class": None, "parameters": None,
                             "bytes": weights.stat().st_size if weights.is_file() else None,
                             "valid_nll_per_sequence": None, "valid_nll_per_point": None, "steps": None,
                             "data": None, "description": None, "error": None}
    if not meta_path.is_file():
        entry["error"] = f"{meta_path}: missing, so {weights.name} cannot be verified; copy its .json back beside it"
        return entry
    try:
        meta = ckpt.read_meta(meta_path)  # checks every field's type: a bad file is reported, not a crash
    except ckpt.CheckpointError as exc:
        if not weights.is_file():
            return None
        entry["error"] = " ".join(str(exc).split())  # one line
        return entry
    if not weights.is_file():
        entry["error"] = f"{weights}: missing (only {meta_path.name} is there); copy the weights file back or retrain"
    metrics, training = meta.get("metrics") or {}, meta.get("training") or {}
    entry.update(
        {"class": meta["model"]["class"], "parameters": meta["model"].get("parameters"),
         "valid_nll_per_sequence": metrics.get("nll_per_sequence"), "valid_nll_per_point": metrics.get("nll_per_point"),
         "steps": training.get("steps"), "data": training.get("data"), "description": meta.get("description")}
    )
    return entry


def list_pretrained(include_broken: bool = False) -> list[dict[str, Any]]:
    """Every pretrained model found (first directory wins for a repeated name): name, path, class,
    parameters, file size, validation NLL, training steps and data.  Reads only the JSON descriptions.

    A model whose description is unreadable or malformed, or whose weights or description is missing, is left
    out, so that every entry returned is usable; with ``include_broken`` it is listed too, with the reason in
    ``error`` (``None`` for the usable ones)."""
    seen: dict[str, dict] = {}
    for d in pretrained_dirs():
        if not d.is_dir():
            continue
        for name in sorted({p.stem for p in d.glob("*.json")} | {p.stem for p in d.glob("*.safetensors")}):
            if name in seen:
                continue
            entry = _entry(name, d / f"{name}.safetensors", d / f"{name}.json")
            if entry is not None:
                seen[name] = entry
    return [m for m in seen.values() if include_broken or not m["error"]]


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
    its checksum.  The weights are copied byte for byte; the description gains ``description``, the new
    file name and where it came from (a relative path).  The two files are written as a pair, both or
    neither.  Returns the new weights path."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise PretrainedError(f"{name!r} is not a usable model name: use letters, digits and dashes, e.g. 'my-graves'")
    src_weights, src_meta = ckpt.model_paths(source)
    ckpt.load_model(src_weights, verify=True)  # refuse to publish a damaged checkpoint
    meta = json.loads(src_meta.read_text(encoding="utf-8"))
    out_dir = Path(directory) if directory is not None else REPO_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    meta["weights"]["file"] = weights.name
    if description is not None:
        meta["description"] = description
    meta["published_from"] = ckpt.portable_path(src_weights)  # not this machine's absolute folders
    text = json.dumps(meta, indent=2) + "\n"
    ckpt._write_together({weights: src_weights.read_bytes(), weights.with_suffix(".json"): text.encode("utf-8")})
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
    parser.add_argument("--verify", action="store_true", help="also load every model and check its checksum; "
                        "exit status 1 if any model is broken (a plain listing always exits 0)")
    parser.add_argument("--publish", nargs=2, metavar=("CHECKPOINT", "NAME"), help="copy a trained checkpoint (e.g. runs/graves/best) into data/pretrained as NAME")
    parser.add_argument("--description", help="with --publish: a one-line description stored with the model")


def run(args) -> int:
    """List the models; a broken one is listed with its error on one line, the others as usual.  The exit
    status is 0 for a plain listing (it only reports), and 1 with ``--verify`` if any model is broken: its
    description unreadable, a file missing or its weights failing the checksum."""
    if args.publish:
        path = publish(args.publish[0], args.publish[1], args.description)
        print(f"published {args.publish[0]} as {args.publish[1]}: {path}")
        return 0
    models = list_pretrained(include_broken=True)
    if args.verify:
        for m in models:
            if m["error"] is None:
                try:
                    load_pretrained(m["name"])
                except HandwritingError as exc:
                    m["error"] = " ".join(str(exc).split())
            m["verified"] = m["error"] is None
    status = 1 if args.verify and any(m["error"] for m in models) else 0
    if args.json:
        print(json.dumps(models, indent=2))
        return status
    if not models:
        print(f"no pretrained models found; {_how_to_get('NAME')}")
        return 0
    rows = [("name", "class", "params", "size", "valid nats/seq", "nats/point", "steps")]
    for m in models:
        nll = m["valid_nll_per_sequence"]
        npp = m["valid_nll_per_point"]
        rows.append(
            (
                m["name"] + ("  (DAMAGED)" if m["error"] else ""),
                str(m["class"] or "?"),
                f"{m['parameters'] / 1e6:.2f}M" if m["parameters"] else "?",
                _fmt_bytes(m["bytes"]) if m["bytes"] is not None else "-",
                f"{nll:.1f}" if isinstance(nll, (int, float)) else "-",
                f"{npp:.3f}" if isinstance(npp, (int, float)) else "-",
                str(m["steps"] if m["steps"] is not None else "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for m in models:
        if m["error"]:
            print(f"{m['name']}: {m['error']}")
    return status
