"""Style carry (handwriting.style_carry): the rank correlation and the style distance on constructed data, a
perfect copier, and the `handwriting evaluate style` command end to end on the tiny pretrained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from handwriting.cli import main
from handwriting.datasets.writers import held_out_writers, training_writers
from handwriting.evaluate import cer
from handwriting.style_carry import (
    CORRELATED,
    DISTANCE_FEATURES,
    _seed,
    average_ranks,
    carry_table,
    choose_texts,
    mean_features,
    measure,
    spearman,
    style_distance,
)

# ----------------------------------------------------------------------------------------------------------
# statistics on constructed data


def test_average_ranks_match_scipy_with_ties(rng):
    for x in ([3.0, 1.0, 2.0], [1.0, 1.0, 2.0, 2.0, 2.0, 0.5], [5.0] * 4, rng.integers(0, 4, size=30).astype(float)):
        assert np.allclose(average_ranks(x), stats.rankdata(x))
    m = rng.integers(0, 3, size=(5, 7)).astype(float)
    assert np.allclose(average_ranks(m, axis=1), stats.rankdata(m, axis=1))


def test_spearman_matches_scipy_and_a_direct_computation(rng):
    x = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0, 0.0])
    y = np.array([2.0, 1.0, 4.0, 4.0, 3.0, 6.0, 6.0, 0.5])
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    direct = np.corrcoef(rx, ry)[0, 1]
    assert spearman(x, y) == pytest.approx(direct, abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    for _ in range(5):
        a, b = rng.normal(size=12), rng.integers(0, 5, size=12).astype(float)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [9, 1, 0, -5]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [2.0, 7.0, 40.0]) == pytest.approx(1.0)  # monotone, not linear
    assert np.isnan(spearman([1, 2, 3], [4, 4, 4]))  # a constant side has no ranks to correlate
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def _features(rng, n):
    return [{k: float(rng.normal()) for k in ("slant", "log_width_per_char", "log_height", "lifts_per_char",
                                                 "log_step", "log_ink_per_char")} for _ in range(n)]  # fmt: skip


def test_style_distance_is_zero_for_copies_and_grows_with_a_shift(rng):
    ref = _features(rng, 10)
    assert style_distance(ref, ref)["mean"] == 0.0
    std = np.std([r["slant"] for r in ref])
    last = 0.0
    for k in (0.5, 1.0, 2.0, 4.0):  # a shift of k reference stds in one feature: a distance of exactly k
        out = [{**r, "slant": r["slant"] + k * std} for r in ref]
        d = style_distance(out, ref)
        assert d["mean"] == pytest.approx(k) and d["mean"] > last
        last = d["mean"]
    both = [{**r, "slant": r["slant"] + std, "lifts_per_char": r["lifts_per_char"] + np.std([q["lifts_per_char"] for q in ref])}
            for r in ref]  # fmt: skip
    assert style_distance(both, ref)["mean"] == pytest.approx(np.sqrt(2))
    # log_step (the point density) is not part of the distance
    assert "log_step" not in DISTANCE_FEATURES
    assert style_distance([{**r, "log_step": r["log_step"] + 9} for r in ref], ref)["mean"] == 0.0


def test_a_perfect_copier_gets_correlation_one_and_distance_zero():
    """A "model" whose primed output IS the writer's own writing of the texts."""
    writers = held_out_writers()  # the eight synthetic writers
    texts = ["minimum", "quick fox", "lazy dog"]
    reference = {w.name: [w.write(t, 10 + j) for j, t in enumerate(texts)] for w in writers}
    primed = {n: list(s) for n, s in reference.items()}  # the copier
    # unprimed: one hand for everybody (the first writer's), a different writer's each time
    names = list(reference)
    unprimed = {n: reference[names[(i + 1) % len(names)]] for i, n in enumerate(names)}
    t = carry_table(reference, primed, unprimed, kinds={w.name: w.kind for w in writers}, n_boot=300)
    s = t["summary"]
    for k in CORRELATED:
        assert s["spearman"]["primed"][k]["rho"] == pytest.approx(1.0)
        lo, hi = s["spearman"]["primed"][k]["ci95"]
        assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
        assert s["spearman"]["unprimed"][k]["rho"] < 0.99
    assert s["distance"]["primed"]["mean"] == 0.0
    assert s["distance"]["unprimed"]["mean"] > 0.5
    assert s["distance_gain"]["mean"] == pytest.approx(s["distance"]["unprimed"]["mean"])
    assert [r["name"] for r in t["writers"]] == names and all(r["kind"] == "synthetic" for r in t["writers"])
    assert t["writers"][0]["primed"] == mean_features(reference[names[0]])
    # ready feature dicts are accepted as well as samples, and any further condition is measured too
    feats = {n: mean_features(v) for n, v in reference.items()}
    t2 = carry_table(feats, feats, unprimed, style=primed, n_boot=50)
    assert t2["summary"]["distance"]["style"]["mean"] == 0.0 and set(t2["summary"]["spearman"]) == {"primed", "unprimed", "style"}
    with pytest.raises(Exception, match="other writers"):
        carry_table(reference, {names[0]: primed[names[0]]}, unprimed)


def test_choose_texts_disjoint_and_deterministic():
    words = [f"w{c}{d}" for c in "abcdefgh" for d in "xyz"]
    prime, texts = choose_texts(words, 6, seed=3)
    assert 2 <= len(prime.split()) <= 3 and len(texts) == 6
    used = [w for t in texts for w in t.split()]
    assert all(1 <= len(t.split()) <= 3 for t in texts)
    assert not set(prime.split()) & set(used) and len(used) == len(set(used))
    assert choose_texts(words, 6, seed=3) == (prime, texts)
    assert choose_texts(words, 6, seed=4) != (prime, texts)
    with pytest.raises(Exception, match="too few"):
        choose_texts(words[:4], 6)


# ----------------------------------------------------------------------------------------------------------
# end to end


def _style(tmp_path, capsys, *args) -> tuple[str, dict]:
    """``handwriting evaluate style`` on the tiny model with random words and ``args``: what it printed, its JSON."""
    out = tmp_path / "style.json"
    assert main(["evaluate", "style", "--model", "graves-synthesis-tiny", "--words", "random", *args, "--json", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_command_on_the_tiny_model(tmp_path, capsys, one_thread):
    printed, r = _style(tmp_path, capsys, "--texts", "2")
    names = [w.name for w in held_out_writers()]
    assert [w["name"] for w in r["writers"]] == names
    for w in r["writers"]:
        assert set(w) >= {"reference", "primed", "unprimed", "distance", "cer", "kind", "prime"}
        assert w["name"] in printed
    assert set(r["summary"]) >= {"spearman", "distance", "distance_gain", "writers"}
    for c in ("primed", "unprimed"):
        assert set(r["summary"]["spearman"][c]) == set(CORRELATED)
        assert r["summary"]["distance"][c]["mean"] >= 0
    assert set(r["cer"]) == {"reference", "primed", "unprimed"}
    assert r["recognizer_trained_on"] == "bigbank + synthetic writer"
    from handwriting.pretrained import load_pretrained

    assert r["recognizer_sha256"] == load_pretrained(r["recognizer"]).meta["weights"]["sha256"]
    assert len(r["texts"]) == 2 and not set(r["prime_text"].split()) & {w for t in r["texts"] for w in t.split()}
    lines = printed.splitlines()
    assert sum(any(ln.startswith(n + " ") for n in names) for ln in lines) == len(names)  # one row per writer
    assert any(ln.startswith("primed: ρ") for ln in lines) and any(ln.startswith("unprimed: ρ") for ln in lines)
    assert "bigbank + synthetic writer" in printed
    # the prime itself, scored as if it were an output: the features of the prime each writer wrote
    writers = held_out_writers()
    for i, (w, row) in enumerate(zip(writers, r["writers"])):
        prime = w.write(r["prime_text"], _seed(r["seed"], i, 0x9A1))
        assert row["own_prime"] == pytest.approx(mean_features([prime]))
    for k in CORRELATED:
        x = [row["reference"][k] for row in r["writers"]]
        y = [row["own_prime"][k] for row in r["writers"]]
        assert r["summary"]["spearman"]["own_prime"][k]["rho"] == pytest.approx(spearman(x, y))
    assert "own_prime" not in r["cer"] and "own_prime" not in r["summary"]["distance_gains"]
    assert any(ln.startswith("own_prime: ρ") for ln in lines)


def test_measure_is_deterministic_and_checks_arguments(one_thread):
    a = measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:3], n_boot=50)
    b = measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:3], n_boot=50)
    assert a["writers"] == b["writers"] and a["summary"] == b["summary"]
    with pytest.raises(Exception, match="too few"):
        measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:2])
    with pytest.raises(Exception, match="give one of them"):  # two answers to which hands: refused, not one ignored
        measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:3], hands="training")
    with pytest.raises(Exception, match="words"):
        measure("graves-synthesis-tiny", words="english")
    with pytest.raises(Exception, match="texts"):
        measure("graves-synthesis-tiny", n_texts=0)


def test_held_out_words_give_twelve_writers(bigbank_path, monkeypatch, one_thread):
    monkeypatch.setenv("HANDWRITING_BIGBANK", str(bigbank_path))
    r = measure("graves-synthesis-tiny", n_texts=2, n_boot=50)
    assert len(r["writers"]) == 12
    assert sorted({w["kind"] for w in r["writers"]}) == ["ink", "synthetic"]
    assert r["words"].startswith("held-out bigbank words")


def test_styled_condition_fits_each_writer_on_other_words(tmp_path, capsys, one_thread):
    """--fit-words adds the fine-tuned condition: a style file per writer, fitted on words that are neither the
    prime's nor the targets', then the styled model writes the targets; it enters every table and the CER."""
    printed, r = _style(tmp_path, capsys, "--texts", "2", "--fit-words", "6", "--fit-steps", "3")
    fit = r["style_fit"]["words"]
    assert len(fit) == len(set(fit)) == 6
    assert not set(fit) & (set(r["prime_text"].split()) | {w for t in r["texts"] for w in t.split()})
    for w in r["writers"]:
        assert {"styled", "primed", "unprimed"} <= set(w["distance"]) and "styled" in w["cer"]
        assert w["style_fit"]["steps"] == 3
    assert set(r["cer"]) == {"reference", "primed", "unprimed", "styled"}
    assert set(r["summary"]["distance_gains"]) == {"primed", "styled"}
    assert any(ln.startswith("styled: ρ") for ln in printed.splitlines())
    assert "unprimed − styled" in printed
    # the styled writing differs from the unstyled one with the same seeds: the fit changed the model
    assert any(w["styled"] != w["unprimed"] for w in r["writers"])
    with pytest.raises(Exception, match="fit-words"):
        measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:3], fit_words=10**6)


def test_more_prime_lines_prime_with_more_of_each_hand_and_change_nothing_else(tmp_path, capsys, one_thread):
    """--prime-lines 3: each writer writes two further prime lines of unused words before the prime text; the
    writing continues the prime text as with one line, and the prime's own features are over all three."""
    _, one = _style(tmp_path, capsys, "--texts", "2", "--seed", "4")
    _, r = _style(tmp_path, capsys, "--texts", "2", "--seed", "4", "--prime-lines", "3")
    assert r["prime_text"] == one["prime_text"] and r["texts"] == one["texts"]
    lines = r["prime_lines"]
    assert len(lines) == 3 and lines[-1] == r["prime_text"] and all(2 <= len(t.split()) <= 3 for t in lines)
    words = [w for t in lines for w in t.split()]
    assert len(words) == len(set(words)) and not set(words) & {w for t in r["texts"] for w in t.split()}
    for i, (w, row, row1) in enumerate(zip(held_out_writers(), r["writers"], one["writers"])):
        mine = [w.write(t, _seed(4, i, 0x9A1, j)) for j, t in enumerate(lines[:-1])] + [w.write(lines[-1], _seed(4, i, 0x9A1))]
        assert row["own_prime"] == pytest.approx(mean_features(mine))
        assert row["prime"]["text"] == " / ".join(lines)
        assert row["unprimed"] == row1["unprimed"] and row["reference"] == row1["reference"]
        assert row["piece_chars"] == row1["piece_chars"]  # the pieces are those of the prime text alone
    assert any(row["primed"] != row1["primed"] for row, row1 in zip(r["writers"], one["writers"]))
    with pytest.raises(Exception, match="prime-lines"):
        measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:3], prime_lines=0)


def test_the_training_hands_control_is_measured_and_labelled(tmp_path, capsys, one_thread):
    printed, r = _style(tmp_path, capsys, "--texts", "1", "--hands", "training")
    assert "8 writers drawn as the training lines are (the control)" in printed
    assert r["hands"] == "training"
    assert [w["name"] for w in r["writers"]] == [w.name for w in training_writers(None, seed=0)]
    held = measure("graves-synthesis-tiny", n_texts=1, words="random", n_boot=50)
    assert held["hands"] == "held-out" and held["texts"] == r["texts"]
    with pytest.raises(Exception, match="hands='trained'.*'training'"):
        measure("graves-synthesis-tiny", n_texts=1, words="random", hands="trained")


def test_best_of_n_is_labelled_and_never_scored_by_its_own_reranker(tmp_path, capsys, one_thread):
    """--candidates N writes every piece N times and keeps what the reranker reads best (write(candidates=));
    the scorer must be another network, and the result says which decoding it measured."""
    with pytest.raises(Exception, match="same network"):
        measure("graves-synthesis-tiny", n_texts=1, words="random", writers=held_out_writers()[:3], candidates=3)
    printed, r = _style(tmp_path, capsys, "--texts", "1", "--recognizer", "recognizer-hands", "--candidates", "3")
    assert "best of 3 reranked by recognizer-bigbank" in printed
    assert (r["candidates"], r["reranker"], r["recognizer"]) == (3, "recognizer-bigbank", "recognizer-hands")
    plain = measure("graves-synthesis-tiny", n_texts=1, words="random", recognizer="recognizer-hands", n_boot=50)
    assert plain["candidates"] == 1 and plain["reranker"] is None
    assert [w["primed"] for w in plain["writers"]] != [w["primed"] for w in r["writers"]]


def test_draws_pool_the_cer_of_every_text_of_every_draw(tmp_path, capsys, one_thread):
    """--draws N measures seeds --seed … --seed + N − 1 exactly as N single runs, and pools their CER: the
    edits of every text read in every draw over all their characters (not a mean of the draws' rates)."""
    printed, r = _style(tmp_path, capsys, "--texts", "2", "--seed", "3", "--draws", "2")
    assert r["seeds"] == [3, 4] and [d["seed"] for d in r["draws"]] == [3, 4]
    single = measure("graves-synthesis-tiny", n_texts=2, words="random", seed=4)
    assert r["draws"][1]["writers"] == single["writers"] and r["draws"][1]["texts"] == single["texts"]
    for c in ("reference", "primed", "unprimed"):
        reads = [p for d in r["draws"] for w in d["writers"] for p in w["read"][c]]
        texts = [t for d in r["draws"] for _ in d["writers"] for t in d["texts"]]
        assert r["pooled"]["cer"][c]["cer"] == pytest.approx(cer(reads, texts))
        lo, hi = r["pooled"]["cer"][c]["cer_ci95"]
        assert lo <= r["pooled"]["cer"][c]["cer"] <= hi
        assert r["pooled"]["cer"][c]["texts"] == len(texts)
    for w in r["draws"][0]["writers"]:  # each writer's readings give its CER
        assert w["cer"]["primed"] == pytest.approx(cer(w["read"]["primed"], r["draws"][0]["texts"]))
    slants = [d["summary"]["spearman"]["primed"]["slant"]["rho"] for d in r["draws"]]
    assert r["pooled"]["spearman"]["primed"]["slant"]["mean"] == pytest.approx(sum(slants) / 2)
    assert "pooled CER, primed:" in printed and "seed   4" in printed
    assert main(["evaluate", "style", "--model", "graves-synthesis-tiny", "--words", "random", "--draws", "0"]) == 2
    assert "draws (--draws) must be from 1 to 100" in capsys.readouterr().err
