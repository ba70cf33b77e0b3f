"""The training data named by ``--data``: one source (synthetic, bigbank, synthbank, hands, json:PATH, iam:PATH)
or several joined with ``+``, split word-disjointly per source.

``hands`` is bigbank + synthbank written in many hands: the same words and splits, stitched into lines that
are each restyled or written by a synthetic writer (:class:`~handwriting.datasets.writers.ManyHands`, applied
by the recipes; the provenance says ``"hands": true``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._io import portable_arg, portable_path
from ..errors import DataError
from .download import sha256_file

#: the cursive transformer's two files by one writer: data that the bigbank defaults (downsampling, line length,
#: tokenizer scale) were chosen for
CURSIVE_SOURCES = ("bigbank", "synthbank")


#: the multi-writer mix: these sources' words, each training line in another hand
HANDS = "hands"


def is_cursive_data(spec: str) -> bool:
    """Whether ``--data`` names only bigbank / synthbank (``bigbank``, ``bigbank+synthbank``, ``hands``, ...),
    or ``hands`` with IAM-OnDB, whose lines the mix brings to bigbank's ink (:func:`~.writers.match_ink`)."""
    kinds = [part.partition(":")[0] for part in str(spec).split("+")]
    return all(k in CURSIVE_SOURCES + (HANDS,) or (k == "iam" and HANDS in kinds) for k in kinds)


def is_many_hands(spec: str) -> bool:
    """Whether ``--data`` asks for the multi-writer mix (``hands``)."""
    return HANDS in str(spec).split("+")


def _load_source(spec: str, opts: dict) -> tuple[list, list | None, dict]:
    """``(samples, None, provenance)`` for one word or line source, or ``(train, valid, provenance)`` for a
    source with its own official split (IAM)."""
    kind, _, arg = spec.partition(":")
    seed, limit = int(opts["seed"]), opts.get("limit")
    info: dict[str, Any] = {}
    if kind == "synthetic":
        from .synthetic import random_words, synthesize

        n = int(opts["synthetic"])
        if limit:
            n = min(n, int(limit))
        samples = synthesize(random_words(n, seed=seed), writer=None, seed=seed)
        recipe = json.dumps({"synthetic": n, "seed": seed}, sort_keys=True)
        info["data_sha256"] = hashlib.sha256(recipe.encode()).hexdigest()
        info["data_recipe"] = recipe
    elif kind in CURSIVE_SOURCES:
        from .download import dataset_path
        from .jsonink import load_bigbank, load_synthbank

        given = (opts.get("bigbank") if kind == "bigbank" else None) or arg
        path = Path(given).expanduser() if given else dataset_path(kind)
        samples = (load_bigbank if kind == "bigbank" else load_synthbank)(path, limit=limit)
        info.update(data_file=portable_path(path), data_sha256=sha256_file(path))
    elif kind == "json":
        from .jsonink import load_samples

        if not arg:
            raise DataError("--data json:PATH needs the path of a handwriting-samples JSON file")
        path = Path(arg).expanduser()
        samples = load_samples(path)[:limit]
        info.update(data_file=portable_path(path), data_sha256=sha256_file(path))
    elif kind == "iam":
        from .iam import load_iam

        if not arg:
            raise DataError("--data iam:PATH needs the folder where IAM-OnDB is unpacked (see data/README.md)")
        root = Path(arg).expanduser()
        train = list(load_iam(root, "train", limit=limit))
        valid = list(load_iam(root, "valid", limit=limit))
        listing = hashlib.sha256()
        for s in train + valid:
            listing.update(f"{s.source}:{len(s.offsets)}:{s.text}\n".encode())
        info.update(data_file=portable_path(root), data_sha256=listing.hexdigest(), data_sha256_of="the list of lines")
        return train, valid, info
    else:
        raise DataError(f"--data {spec!r}: use synthetic, bigbank, synthbank, hands, iam:PATH or json:PATH "
                        "(or several joined with +, e.g. bigbank+synthbank)")
    if not samples:
        raise DataError(f"--data {spec}: no samples loaded")
    return samples, None, info


def load_data(opts: dict) -> tuple[list, list, dict]:
    """``(train samples, valid samples, provenance)`` for ``--data``: one source, or several joined with ``+``
    (``bigbank+synthbank``).  Word data is split word-disjointly per source with the run's seed, so a source's
    validation words are the same whatever it is mixed with; IAM keeps its official split."""
    from .torch_data import word_disjoint_split

    spec = str(opts["data"])
    seed, frac = int(opts["seed"]), float(opts["valid_fraction"])
    parts = spec.split("+")
    if len(set(parts)) != len(parts) or not all(parts):
        raise DataError(f"--data {spec!r}: name each source once, joined with + (e.g. bigbank+synthbank)")
    if HANDS in parts:
        others = [p for p in parts if p.partition(":")[0] not in CURSIVE_SOURCES + (HANDS,)]
        if any(p.partition(":")[0] != "iam" for p in others):
            raise DataError(f"--data {spec!r}: hands restyles bigbank and synthbank words and takes the lines of IAM-OnDB "
                            "(hands+iam:PATH); it mixes with no other source")
        train, valid, info = load_data({**opts, "data": "+".join(CURSIVE_SOURCES)})
        info = {**info, "data": spec, "hands": True}
        if others:
            from .writers import match_ink

            words, lines = list(train), {}
            for part in others:  # IAM's own writers, in their own hands (its official split)
                tr, va, part_info = _load_source(part, opts)
                train += match_ink(tr, words)
                valid += match_ink(va, words)
                lines[portable_arg(part)] = {**part_info, "train_samples": len(tr), "valid_samples": len(va)}
            info["lines_of_other_writers"] = lines
            info["data_sha256"] = hashlib.sha256("".join(
                [f"hands:{info['data_sha256']}\n"] + [f"{p}:{i['data_sha256']}\n" for p, i in lines.items()]).encode()).hexdigest()
            info["data_sha256_of"] = "the lines 'hands:sha256' (bigbank + synthbank) and 'source:sha256' of lines_of_other_writers"
            info.update(train_samples=len(train), valid_samples=len(valid))
        return train, valid, info
    train: list = []
    valid: list = []
    infos: dict[str, dict] = {}
    for part in parts:
        samples, own_valid, part_info = _load_source(part, opts)
        if own_valid is None:
            tr, va = word_disjoint_split(samples, frac, seed=seed)
            if not tr or not va:
                raise DataError(
                    f"--data {part}: {len(samples)} samples give {len(tr)} training and {len(va)} validation samples; "
                    "use more data or another --valid-fraction"
                )
            part_info["valid_fraction"] = frac
        else:
            tr, va = samples, own_valid
        part_info.update(train_samples=len(tr), valid_samples=len(va))
        train += tr
        valid += va
        infos[part] = part_info
    if len(parts) > 1:  # a word held out by one source is held out of every source's training lines
        held = {s.text for s in valid}
        train = [s for s in train if s.text not in held]
    infos = {portable_arg(p): i for p, i in infos.items()}
    spec = "+".join(infos)
    if len(parts) == 1:
        return train, valid, {"data": spec, **infos[spec]}
    digest = hashlib.sha256("".join(f"{p}:{i['data_sha256']}\n" for p, i in infos.items()).encode()).hexdigest()
    info = {"data": spec, "data_sha256": digest, "data_sha256_of": "the lines 'source:sha256' of data_parts",
            "data_parts": infos, "train_samples": len(train), "valid_samples": len(valid), "valid_fraction": frac}
    return train, valid, info
