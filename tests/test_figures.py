"""The course's reproduced figures draw under the paper's conditions (issue #18).

Graves' Fig. 15 sets real handwriting beside unbiased samples of the same text, text the network never saw in
training. Notebook 04 picks its real words with :func:`handwriting.notebook_utils.pick_heldout_words`; these tests
run the very calls its Fig. 15 and Fig. 17 cells make and check every word against the training split recorded
in the writing model's card (the word-disjoint bigbank split: ``valid_fraction`` 0.1, seed 0).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import partial
from pathlib import Path

import pytest

from handwriting.notebook_utils import pick_heldout_words

ROOT = Path(__file__).resolve().parent.parent
NB04 = ROOT / "notebooks" / "04_handwriting_synthesis.ipynb"
WRITER = "graves-synthesis-bigbank"  # the model notebook 04 writes its figures with (its PRETRAINED)


def _code_cell(notebook: Path, marker: str) -> str:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    hits = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and marker in "".join(c["source"])]
    assert len(hits) == 1, f"{notebook.name}: expected one code cell that saves {marker}, found {len(hits)}"
    return hits[0]


def _calls(source: str, name: str) -> list[str]:
    """The argument text of every ``name(...)`` call in ``source`` (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", source):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        out.append(source[m.end():i - 1])
    return out


@pytest.fixture(scope="module")
def writer():
    from handwriting.pretrained import load_pretrained

    return load_pretrained(WRITER)


def _training_words(writer, path: Path, synthbank: Path, monkeypatch) -> set[str]:
    """The words of the writer's training lines, rebuilt with the project's own loader from its model card
    (its data sources, split fraction and seed; each source checked against the recorded checksum)."""
    from handwriting.datasets.sources import load_data
    from handwriting.train import DEFAULTS

    training = writer.meta["training"]
    parts = training.get("data_parts") or {training["data"]: training}
    monkeypatch.setenv("HANDWRITING_BIGBANK", str(path))
    monkeypatch.setenv("HANDWRITING_SYNTHBANK", str(synthbank))
    for name, info in parts.items():
        file = {"bigbank": path, "synthbank": synthbank}[name]
        if hashlib.sha256(file.read_bytes()).hexdigest() != info["data_sha256"]:
            pytest.skip(f"{file} is not the {name} file {WRITER} was trained on")
    options = training.get("options", {})
    opts = dict(DEFAULTS, data=training["data"], seed=int(options.get("seed", 0)),
                valid_fraction=float(options.get("valid_fraction", 0.1)))
    train, valid, info = load_data(opts)
    assert len(valid) == training["valid_samples"]  # the same held-out words as the run
    return {w for s in train for w in s.text.split()}


@pytest.mark.parametrize("figure", ["graves_fig15_real_vs_generated.png", "graves_fig17_primed.png"])
def test_notebook_04_real_words_are_held_out(figure, writer, bigbank_path, synthbank_path, monkeypatch):
    source = _code_cell(NB04, figure)
    calls = _calls(source, "pick_heldout_words")
    assert calls, f"the cell of {figure} should pick its real words with pick_heldout_words"
    assert "pick_words(" not in source and "words[" not in source, "real words must not come from the training data"
    trained_on = _training_words(writer, bigbank_path, synthbank_path, monkeypatch)
    namespace = {"pick_heldout_words": partial(pick_heldout_words, path=bigbank_path), "writer": writer, "SEED": 0}
    for args in calls:
        picked = eval(f"pick_heldout_words({args})", namespace)  # the notebook's own call
        assert picked, f"pick_heldout_words({args}) found no words"
        texts = [s.text for s in picked]
        seen = [t for t in texts if set(t.split()) & trained_on]
        assert not seen, f"{figure}: {seen} are in {WRITER}'s training split"
        assert all(ch in writer.alphabet for t in texts for ch in t)


def test_notebook_04_fig15_samples_are_unbiased():
    source = _code_cell(NB04, "graves_fig15_real_vs_generated.png")
    biases = re.findall(r"bias=([^,)]+)", source)
    assert biases and all(float(b) == 0.0 for b in biases), f"Fig. 15 samples with bias {biases}; Graves uses b = 0"


def test_fig15_and_fig17_words_differ(bigbank_path, writer):
    primes = pick_heldout_words(2, writer.alphabet, path=bigbank_path)
    reals = pick_heldout_words(4, writer.alphabet, skip=2, path=bigbank_path)
    assert len(primes) == 2 and len(reals) == 4
    assert not {s.text for s in primes} & {s.text for s in reals}


def test_pick_heldout_words_filters(bigbank_path):
    words = pick_heldout_words(20, "abcdefghijklmnopqrstuvwxyz", 5, 6, path=bigbank_path)
    assert words and all(5 <= len(s.text) <= 6 and s.text.isalpha() and s.text.islower() for s in words)
    skipped = pick_heldout_words(5, "abcdefghijklmnopqrstuvwxyz", 5, 6, skip=3, path=bigbank_path)
    assert [s.text for s in skipped] == [s.text for s in words[3:8]]
