"""Best-of-N decoding: write(candidates=N) keeps, per piece, the version the reranker reads closest to the text."""

import copy

import numpy as np
import pytest

import handwriting.reading as reading
from handwriting.errors import ArgumentError
from handwriting.generate import write
from handwriting.reading import best_candidates, edit_distance


def test_best_candidate_is_the_one_at_the_smallest_edit_distance():
    reads = ["helo", "hello", "hxllo", "wrld", "world!", "world"]
    assert best_candidates(reads, ["hello", "world"], 3) == [1, 5]
    assert best_candidates(["ab", "ac", "ab"], ["ad"], 3) == [0]  # a tie keeps the first
    assert [edit_distance(r, "hello") for r in reads[:3]] == [1, 0, 1]
    with pytest.raises(ValueError, match="readings"):
        best_candidates(reads, ["hello"], 3)


class _ScriptedReader:
    """Reads candidate k of every piece as ``script[k]``; remembers what it was given."""

    def __init__(self, script):
        self.script, self.seen = script, None

    def recognize(self, items, chars=None):
        self.seen = list(items)
        return [self.script[k % len(self.script)] for k in range(len(items))]


def test_write_keeps_the_candidate_the_reranker_reads_best(monkeypatch):
    reader = _ScriptedReader(["xx", "ab", "zz", "a"])  # candidate 1 is read as the text itself
    monkeypatch.setattr(reading, "load_recognizer", lambda name=None, device="cpu": reader)
    plain = write("ab", model="graves-synthesis-tiny", seed=3, bias=1, samples=4)  # the same four draws
    best = write("ab", model="graves-synthesis-tiny", seed=3, bias=1, candidates=4)
    assert best.read == ["ab"]
    assert len(reader.seen) == 4
    drawn = [w.lines[0].offsets for w in plain]
    kept = best.lines[0].offsets
    assert any(np.array_equal(kept, d) for d in drawn)  # one of the batch's versions, untouched
    assert np.array_equal(kept, reader.seen[1].offsets if hasattr(reader.seen[1], "offsets") else reader.seen[1])


def test_candidates_is_checked_before_any_work():
    with pytest.raises(ArgumentError, match="candidates"):
        write("ab", model="graves-synthesis-tiny", candidates=0)


def test_with_the_real_recognizer_the_kept_version_reads_best_of_the_batch():
    from handwriting.generate import resolve_model
    from handwriting.reading import load_recognizer

    rec = load_recognizer()
    text = "hello"
    chars = "".join(resolve_model("graves-synthesis-tiny").alphabet.chars)
    drawn = write(text, model="graves-synthesis-tiny", seed=0, bias=1, samples=6)
    best = write(text, model="graves-synthesis-tiny", seed=0, bias=1, candidates=6)
    reads = rec.recognize([w.lines[0] for w in drawn], chars=chars)
    assert best.read[0] in reads
    assert edit_distance(best.read[0], text) == min(edit_distance(r, text) for r in reads)


def test_reranked_legibility_refuses_to_score_with_the_reranker_itself():
    from handwriting.evaluate import EvaluateError, legibility

    with pytest.raises(EvaluateError, match="same network"):
        legibility("graves-synthesis-tiny", n=2, candidates=4)  # reranker and scorer both recognizer-bigbank


def test_reranked_legibility_with_another_scorer_reports_both(tmp_path):
    import torch

    from handwriting import checkpoint as ckpt
    from handwriting.evaluate import legibility
    from handwriting.reading import load_recognizer

    other = copy.deepcopy(load_recognizer())  # a copy: loaded recognizers are cached and shared
    with torch.no_grad():  # a different network: the same architecture with other weights
        for prm in other.parameters():
            prm.add_(0.01 * torch.randn_like(prm))
    ckpt.save_model(tmp_path / "other", other)
    r = legibility("graves-synthesis-tiny", n=4, bias=1, candidates=3, recognizer=str(tmp_path / "other"))
    assert r["candidates"] == 3 and r["reranker"] == "recognizer-bigbank" and r["n"] == 4


def test_the_recognizer_is_loaded_once_and_reloaded_when_its_file_changes(tmp_path):
    """Best-of-N reads with a recognizer on every write: it is cached like the generators, by path and mtime."""
    import os

    from handwriting import checkpoint as ckpt
    from handwriting.reading import load_recognizer

    assert load_recognizer() is load_recognizer("recognizer-bigbank")
    ckpt.save_model(tmp_path / "mine", load_recognizer())
    first = load_recognizer(str(tmp_path / "mine"))
    assert load_recognizer(str(tmp_path / "mine")) is first
    weights = tmp_path / "mine.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the file was replaced
    assert load_recognizer(str(tmp_path / "mine")) is not first
