"""The JSON loaders: bigbank (cursive transformer format) and the project's own sample files."""

from __future__ import annotations

import json
import math
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handwriting.datasets import jsonink
from handwriting.datasets.jsonink import BIGBANK_ALPHABET, load_bigbank, load_samples, save_samples
from handwriting.errors import DataError
from handwriting.strokes import Sample, check_offsets, from_strokes, to_absolute, to_strokes


# ----------------------------------------------------------------------------------------------------------
# helpers: small files in the bigbank format


def _word(text="ab", points=None, ratio=6, **meta):
    if points is None:  # two strokes: a short vertical bar and a dot
        points = [[0.10, 0.60, 1], [0.10, 0.50, 1], [0.11, 0.40, 0], [0.20, 0.45, 0]]
    m = {"author": "Sam", "asciiSequence": text, "pointCount": len(points),
         "strokeCount": sum(1 for p in points if isinstance(p, list) and len(p) == 3 and p[2] == 0),
         "aspectRatio": ratio}
    m.update(meta)
    return {"metadata": m, "points": points}


def _write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _write_zip(path: Path, obj, member="words.json", extra=()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, json.dumps(obj))
        for name, data in extra:
            zf.writestr(name, data)
    return path


# ----------------------------------------------------------------------------------------------------------
# the real bigbank


@pytest.fixture(scope="module")
def bigbank(bigbank_path):
    cpu = time.process_time()  # CPU seconds: robust to the machine being shared, unlike wall time
    samples = load_bigbank(bigbank_path)
    return samples, time.process_time() - cpu


def test_bigbank_loads_all_words_fast(bigbank):
    samples, seconds = bigbank
    assert len(samples) == 3500
    # about 2.5 CPU seconds on one core of the 2-core reference machine (JSON parsing is 60% of it)
    assert seconds < 6.0, f"loading bigbank took {seconds:.1f} CPU seconds"


def test_bigbank_texts_alphabet_and_sources(bigbank):
    samples, _ = bigbank
    assert len(BIGBANK_ALPHABET) == 70 and len(set(BIGBANK_ALPHABET)) == 70 and " " not in BIGBANK_ALPHABET
    chars = set()
    for s in samples:
        assert s.text and set(s.text) <= set(BIGBANK_ALPHABET), s.text
        chars |= set(s.text)
    assert chars == set(BIGBANK_ALPHABET)  # every character of the alphabet is used
    assert samples[0].text == "hlin" and samples[0].writer == "Sam"
    assert samples[17].source == "bigbank_3500.json#17"
    assert max(len(s.text) for s in samples) == 15
    assert sum(len(s) for s in samples) == 1_054_455


def test_bigbank_stroke_conventions(bigbank):
    samples, _ = bigbank
    for s in samples:
        assert s.offsets.dtype == np.float32 and s.offsets.shape[1] == 3
        check_offsets(s.offsets, where=s.source)  # eos in {0, 1}, finite, last row ends a stroke
    first = samples[0]
    # 'hlin' has 3 strokes (strokeCount in the file)
    assert first.num_strokes == 3
    # the first point of the file is (0.0483, 0.6479): x is scaled by the aspect ratio, y is flipped
    np.testing.assert_allclose(first.offsets[0, :2], [0.0483 * 6, -0.6479], rtol=1e-6)


def test_bigbank_shape_is_upright_and_aspect_corrected(bigbank):
    samples, _ = bigbank
    ratios, heights, tall = [], [], 0
    for s in samples:
        pts = to_absolute(s.offsets)
        w, h = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
        ratios.append(w / h)
        heights.append(h)
        if "l" in s.text and not set(s.text) & set("gjpqyJ,"):
            # words with an ascender and no descender: the top part (y up) holds the ascender, so the
            # median point lies below the middle of the bounding box
            tall += np.median(pts[:, 1]) < (pts[:, 1].min() + pts[:, 1].max()) / 2
    median_ratio = float(np.median(ratios))
    # measured: 2.53 with the aspect ratio applied (it would be 0.42 without it)
    assert 2.0 < median_ratio < 3.2, median_ratio
    assert 0.2 < float(np.median(heights)) < 0.4  # a word is about 0.3 units high
    n_tall = sum(1 for s in samples if "l" in s.text and not set(s.text) & set("gjpqyJ,"))
    assert tall > 0.7 * n_tall  # y really grows upwards


def test_bigbank_limit_and_default_path(tmp_path, monkeypatch):
    small = _write_zip(tmp_path / "small.zip", [_word(t) for t in ("one", "two", "three")])
    monkeypatch.setenv("HANDWRITING_BIGBANK", str(small))  # path=None resolves through bigbank_path()
    assert [s.text for s in load_bigbank(limit=2)] == ["one", "two"]
    assert [s.text for s in load_bigbank()] == ["one", "two", "three"]
    assert load_bigbank(small, limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        load_bigbank(small, limit=-1)


# ----------------------------------------------------------------------------------------------------------
# bigbank format: conversion details on small files


def test_small_bigbank_json_and_zip_agree(tmp_path):
    words = [_word("ab"), _word("c", points=[[0.5, 0.5, 0]])]
    a = load_bigbank(_write_json(tmp_path / "w.json", words))
    b = load_bigbank(_write_zip(tmp_path / "w.zip", words, extra=[("__MACOSX/._words.json", b"junk")]))
    assert [s.text for s in a] == ["ab", "c"] and a[0].source == "w.json#0" and b[1].source == "words.json#1"
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.offsets, y.offsets)
    strokes = to_strokes(a[0].offsets)
    assert len(strokes) == 2  # pen_down 0 on points 2 and 3 ends two strokes; the second is one point
    np.testing.assert_allclose(strokes[0], [[0.6, -0.6], [0.6, -0.5], [0.66, -0.4]], atol=1e-6)
    np.testing.assert_allclose(strokes[1], [[1.2, -0.45]], atol=1e-6)
    assert len(a[1]) == 1 and a[1].offsets[0, 2] == 1  # a one-point sample is legal


def test_bigbank_last_point_always_ends_a_stroke(tmp_path):
    s = load_bigbank(_write_json(tmp_path / "w.json", [_word(points=[[0.1, 0.1, 1], [0.2, 0.1, 1]], strokeCount=0)]))
    assert s[0].offsets[:, 2].tolist() == [0, 1]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda w: w.pop("points"), "points"),
        (lambda w: w.update(points=[]), "empty"),
        (lambda w: w.update(points="abc"), "points"),
        (lambda w: w.pop("metadata"), "metadata"),
        (lambda w: w["metadata"].pop("asciiSequence"), "asciiSequence"),
        (lambda w: w["metadata"].update(asciiSequence=""), "asciiSequence"),
        (lambda w: w["metadata"].update(asciiSequence=5), "asciiSequence"),
        (lambda w: w["metadata"].update(author=3), "author"),
        (lambda w: w["metadata"].update(aspectRatio="6"), "aspectRatio"),
        (lambda w: w["metadata"].update(aspectRatio=0), "aspectRatio"),
        (lambda w: w["metadata"].pop("aspectRatio"), "aspectRatio"),
        (lambda w: w["metadata"].update(pointCount=99), "pointCount"),
        (lambda w: w["metadata"].update(strokeCount=7), "strokeCount"),
        (lambda w: w["points"].__setitem__(2, [0.1, 0.2]), r"points\[2\]"),
        (lambda w: w["points"].__setitem__(1, [0.1, "0.2", 1]), r"points\[1\]"),
        (lambda w: w["points"].__setitem__(1, [0.1, None, 1]), r"points\[1\]"),
        (lambda w: w["points"].__setitem__(3, 7), r"points\[3\]"),
        (lambda w: w["points"].__setitem__(1, [0.1, float("nan"), 1]), r"points\[1\].*non-finite"),
        (lambda w: w["points"].__setitem__(2, [float("inf"), 0.2, 0]), r"points\[2\].*non-finite"),
        (lambda w: w["points"].__setitem__(1, [0.1, 0.2, 2]), r"points\[1\]\[2\] \(pen_down\)"),
    ],
)
def test_bigbank_bad_items_name_file_sample_and_field(tmp_path, mutate, field):
    bad = _word("bad")
    mutate(bad)
    path = _write_json(tmp_path / "broken.json", [_word("ok"), bad])  # json.dumps writes NaN/Infinity literally
    with pytest.raises(DataError, match=rf"broken\.json: sample 1, field .*{field}") as exc:
        load_bigbank(path)
    assert ";" in str(exc.value)  # followed by what to do


def test_bigbank_bad_files(tmp_path):
    cases = {
        "missing.json": None,
        "trunc.json": json.dumps([_word("a"), _word("b")])[:-40],
        "object.json": json.dumps({"metadata": {}}),
        "binary.json": b"\xff\xfe\x00garbage",
        "badzip.zip": b"PK\x03\x04 this is not really a zip",
    }
    for name, content in cases.items():
        p = tmp_path / name
        if isinstance(content, str):
            p.write_text(content)
        elif content is not None:
            p.write_bytes(content)
        with pytest.raises(DataError, match=re_escape(name)):
            load_bigbank(p)
    with pytest.raises(DataError, match="line 1, column .*truncated"):
        load_bigbank(tmp_path / "trunc.json")

    # a zip without a json member, or with two
    p = _write_zip(tmp_path / "nojson.zip", [], member="readme.txt", extra=[("__MACOSX/._x.json", b"")])
    with pytest.raises(DataError, match=r"nojson\.zip: expected exactly one \.json.*found no \.json member"):
        load_bigbank(p)
    p = _write_zip(tmp_path / "two.zip", [], extra=[("more.json", "[]")])
    with pytest.raises(DataError, match=r"two\.zip: .*2 \.json members"):
        load_bigbank(p)
    # a truncated zip (cut in the middle of the member)
    good = _write_zip(tmp_path / "good.zip", [_word("a")] * 200)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.zip: not a readable zip"):
        load_bigbank(cut)
    # a zip whose member is corrupt (CRC mismatch)
    raw = bytearray(_write_zip(tmp_path / "crc.zip", [_word("a")] * 50, member="w.json").read_bytes())
    raw[60] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"crc\.zip"):
        load_bigbank(tmp_path / "crc.zip")


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_impossible_jump_is_an_error_unless_disabled(tmp_path):
    words = [_word("a"), _word("b"), _word("c")]
    # a point 60 word heights away (heights are 0.2 here), then back
    words[1]["points"] = [[0.1, 0.6, 1], [0.1, 0.5, 1], [0.1, 12.5, 1], [0.11, 0.4, 0]]
    words[1]["metadata"].update(pointCount=4, strokeCount=1)
    p = _write_json(tmp_path / "jump.json", words)
    with pytest.raises(DataError, match=r"jump\.json: sample 1, field points \(point 2\).*max_jump=None"):
        load_bigbank(p)
    assert len(load_bigbank(p, max_jump=None)) == 3
    # a legitimate long pen-up move (a few word heights) is fine
    words[1]["points"][2] = [0.5, 0.5, 1]
    assert len(load_bigbank(_write_json(tmp_path / "ok.json", words))) == 3


# ----------------------------------------------------------------------------------------------------------
# the project's own format


def _sample(rng, n_strokes=3, text="hi", writer=None):
    strokes = [rng.normal(size=(int(rng.integers(1, 30)), 2)).cumsum(axis=0) + [5 * k, 0] for k in range(n_strokes)]
    return Sample(from_strokes(strokes), text=text, writer=writer)


def test_save_load_round_trip_exact(tmp_path, rng):
    samples = [_sample(rng, 3, "hello", "ada"), _sample(rng, 1, "", None), _sample(rng, 5, "naïve “q”", "bob")]
    samples.append(Sample(np.array([[3.5, -2.25, 1]], np.float32), text="."))  # one point
    path = save_samples(tmp_path / "mine.json", samples, writer="ada", units="px")
    back = load_samples(path)
    assert len(back) == len(samples)
    for i, (a, b) in enumerate(zip(samples, back)):
        np.testing.assert_array_equal(a.offsets, b.offsets)
        assert b.offsets.dtype == np.float32
        assert b.text == a.text
        assert b.writer == (a.writer or "ada")  # samples without a writer inherit the file's
        assert b.source == f"mine.json#{i}"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "handwriting-samples" and doc["version"] == 1 and doc["units"] == "px"
    assert doc["samples"][1].get("writer") is None and doc["samples"][0]["writer"] == "ada"
    assert len(doc["samples"][0]["strokes"]) == 3
    # strokes are absolute points with y up: the first point of the first stroke is the first offset
    np.testing.assert_allclose(doc["samples"][0]["strokes"][0][0], samples[0].offsets[0, :2], rtol=1e-6)
    assert [p for p in tmp_path.iterdir()] == [path]  # no temporary files left


def test_round_trip_of_real_bigbank_words(tmp_path, bigbank):
    samples, _ = bigbank
    subset = samples[::35]
    back = load_samples(save_samples(tmp_path / "bb.json", subset))
    for a, b in zip(subset, back):
        np.testing.assert_array_equal(a.offsets, b.offsets)
        assert (a.text, a.writer) == (b.text, b.writer)


_coord = st.one_of(
    st.just(0.0),
    st.floats(min_value=2**-10, max_value=2**10, width=32),
    st.floats(min_value=-(2**10), max_value=-(2**-10), width=32),
)


@st.composite
def _samples(draw):
    out = []
    for _ in range(draw(st.integers(0, 3))):
        n = draw(st.integers(1, 25))
        xy = draw(st.lists(st.tuples(_coord, _coord), min_size=n, max_size=n))
        eos = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        eos[-1] = True
        off = np.array([[x, y, float(e)] for (x, y), e in zip(xy, eos)], dtype=np.float32)
        text = draw(st.text(max_size=12))
        writer = draw(st.one_of(st.none(), st.text(min_size=1, max_size=8)))
        out.append(Sample(off, text=text, writer=writer))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(samples=_samples())
def test_round_trip_property(tmp_path, samples):
    path = save_samples(tmp_path / "prop.json", samples)
    back = load_samples(path, max_jump=None)  # random offsets have arbitrary jumps
    assert len(back) == len(samples)
    for a, b in zip(samples, back):
        np.testing.assert_array_equal(a.offsets, b.offsets)
        assert (a.text, a.writer) == (b.text, b.writer)


def test_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path, rng):
    path = tmp_path / "keep.json"
    good = [_sample(rng)]
    save_samples(path, good)
    before = path.read_bytes()
    bad_offsets = np.array([[0, 0, 0], [1, np.nan, 1]], np.float32)
    for bad in ([*good, Sample(bad_offsets)], [*good, Sample(np.zeros((0, 3)))], [*good, "not a sample"],
                [Sample(np.array([[0, 0, 0]], np.float32))]):  # last row does not end a stroke
        with pytest.raises(DataError, match="keep.json"):
            save_samples(path, bad)
        assert path.read_bytes() == before
    with pytest.raises(DataError, match=r"fresh\.json.*sample 1"):
        save_samples(tmp_path / "fresh.json", [*good, Sample(bad_offsets)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]


def _doc(**overrides):
    doc = {
        "format": "handwriting-samples",
        "version": 1,
        "writer": "ada",
        "units": "px",
        "samples": [
            {"text": "ok", "strokes": [[[0, 0], [1, 1]], [[2, 0]]]},
            {"text": "hi", "writer": "bob", "created": "2025-05-01T12:00:00+00:00",
             "strokes": [[[0, 0], [1, 2], [2, 0]], [[1.5, 1.5]]]},
        ],
    }
    doc.update(overrides)
    return doc


def test_load_hand_written_file(tmp_path):
    s = load_samples(_write_json(tmp_path / "hand.json", _doc(extra_future_field=1)))
    assert [x.text for x in s] == ["ok", "hi"] and [x.writer for x in s] == ["ada", "bob"]
    np.testing.assert_array_equal(s[0].offsets, [[0, 0, 0], [1, 1, 1], [1, -1, 1]])
    assert s[1].num_strokes == 2
    assert load_samples(_write_json(tmp_path / "empty.json", _doc(samples=[]))) == []


def _set_sample(i, **kv):
    def f(doc):
        doc["samples"][i].update(kv)
    return f


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format="other"), r"field format"),
        (lambda d: d.pop("format"), r"field format"),
        (lambda d: d.update(version=2), r"field version: .*version 2.*upgrade"),
        (lambda d: d.update(version="1"), r"field version"),
        (lambda d: d.update(version=0), r"field version"),
        (lambda d: d.update(writer=5), r"field writer"),
        (lambda d: d.update(units=[1]), r"field units"),
        (lambda d: d.pop("samples"), r"field samples: missing"),
        (lambda d: d.update(samples={}), r"field samples"),
        (lambda d: d["samples"].__setitem__(1, "x"), r"sample 1, field \(sample\)"),
        (lambda d: d["samples"][1].pop("text"), r"sample 1, field text: missing"),
        (_set_sample(1, text=3), r"sample 1, field text"),
        (_set_sample(1, writer=["x"]), r"sample 1, field writer"),
        (_set_sample(1, created="yesterday"), r"sample 1, field created"),
        (lambda d: d["samples"][1].pop("strokes"), r"sample 1, field strokes: missing"),
        (_set_sample(1, strokes=[]), r"sample 1, field strokes: the sample is empty"),
        (_set_sample(1, strokes=[[[0, 0]], []]), r"sample 1, field strokes\[1\]: the stroke is empty"),
        (_set_sample(1, strokes=[[[0, 0], [1]]]), r"sample 1, field strokes\[0\]\[1\]"),
        (_set_sample(1, strokes=[[[0, 0], [1, "2"]]]), r"sample 1, field strokes\[0\]\[1\]"),
        (_set_sample(1, strokes=[[[0, 0], [1, None]]]), r"sample 1, field strokes\[0\]\[1\]"),
        (_set_sample(1, strokes=[[[0, 0], [1, 2, 3]]]), r"sample 1, field strokes\[0\]\[1\]"),
        (_set_sample(1, strokes=[[[0, 0], [1, float("nan")]]]), r"sample 1, field strokes\[0\]\[1\]: non-finite"),
        (_set_sample(1, strokes=[[[0, 0]], [[float("-inf"), 1]]]), r"sample 1, field strokes\[1\]\[0\]: non-finite"),
        (lambda d: d.update(samples=[*d["samples"] * 3, {"text": "x", "strokes": [[[0, 0], [1, 1], [0, 500]]]}]),
         r"sample 6, field strokes \(point 2\): the pen jumps 499 units.*max_jump=None"),
    ],
)
def test_own_format_bad_input(tmp_path, change, message):
    doc = _doc()
    change(doc)
    path = _write_json(tmp_path / "user.json", doc)
    with pytest.raises(DataError, match=message) as exc:
        load_samples(path)
    assert "user.json" in str(exc.value)


def test_own_format_bad_files(tmp_path):
    (tmp_path / "cut.json").write_text(json.dumps(_doc())[:50])
    with pytest.raises(DataError, match=r"cut\.json: invalid JSON at line 1, column \d+.*truncated"):
        load_samples(tmp_path / "cut.json")
    with pytest.raises(DataError, match=r"list\.json: .*load_bigbank"):
        load_samples(_write_json(tmp_path / "list.json", [_word()]))
    with pytest.raises(DataError, match=r"nope\.json: no such file"):
        load_samples(tmp_path / "nope.json")
    with pytest.raises(DataError, match="is a directory"):
        load_samples(tmp_path)
    # the own format also reads from a zip holding one .json
    z = _write_zip(tmp_path / "mine.zip", _doc())
    assert [s.text for s in load_samples(z)] == ["ok", "hi"]


def test_module_documents_the_schema():
    doc = jsonink.__doc__
    for key in ('"format"', '"version"', '"writer"', '"units"', '"samples"', '"text"', '"strokes"', '"created"'):
        assert key in doc
    readme = Path(__file__).resolve().parents[1] / "data" / "README.md"
    text = readme.read_text(encoding="utf-8")
    for key in ("handwriting-samples", '"strokes"', "bigbank_3500.json.zip", "4a42598977414303a0bd4d03c805beb3",
                "fki.tic.heia-fr.ch", "load_iam"):
        assert key in text, key
    assert math.isfinite(jsonink.MAX_JUMP)


# ----------------------------------------------------------------------------------------------------------
# hostile zips and coordinates that overflow


def _encrypt_flag(path: Path) -> Path:
    """Mark every member of a zip as encrypted (flag bit 0 in the local and central headers), as `zip -e` does.

    Python's zipfile cannot write encrypted members; the flag is what readers act on."""
    raw = bytearray(path.read_bytes())
    for sig, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        k = raw.find(sig)
        while k >= 0:
            raw[k + flags_at] |= 0x1
            k = raw.find(sig, k + 4)
    path.write_bytes(bytes(raw))
    return path


def test_encrypted_zip_member_is_refused(tmp_path):
    p = _encrypt_flag(_write_zip(tmp_path / "locked.zip", [_word("a")], member="words.json"))
    assert zipfile.ZipFile(p).infolist()[0].flag_bits & 0x1
    with pytest.raises(DataError, match=r"locked\.zip \(member words\.json\): .*encrypted.*decrypt.*re-zip"):
        load_bigbank(p)
    with pytest.raises(DataError, match=r"locked\.zip \(member words\.json\): .*encrypted"):
        load_samples(p)


def test_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonink, "MAX_ZIP_MEMBER", 100_000)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("words.json", b"[" + b" " * 1_000_000 + b"]")  # 1 MB that deflates to ~1 kB
    assert bomb.stat().st_size < 10_000
    with pytest.raises(DataError, match=r"bomb\.zip \(member words\.json\): .*1,000,002 bytes.*100,000.*unzip") as exc:
        load_bigbank(bomb)
    assert "MAX_ZIP_MEMBER" in str(exc.value)
    # a small member under the cap still loads
    assert len(load_bigbank(_write_zip(tmp_path / "ok.zip", [_word("a")]))) == 1
    assert jsonink.MAX_ZIP_MEMBER >= 100_000


def test_zip_member_larger_than_its_header_says_is_refused(tmp_path, monkeypatch):
    """The header's size can lie: the cap also holds while inflating."""
    monkeypatch.setattr(jsonink, "MAX_ZIP_MEMBER", 100_000)
    p = tmp_path / "liar.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("words.json", b"[" + b" " * 1_000_000 + b"]")
    raw = bytearray(p.read_bytes())
    for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size: claim 1,000 bytes
        k = raw.find(sig)
        raw[k + size_at : k + size_at + 4] = (1000).to_bytes(4, "little")
    p.write_bytes(bytes(raw))
    assert zipfile.ZipFile(p).infolist()[0].file_size == 1000
    with pytest.raises(DataError, match=r"liar\.zip"):
        load_bigbank(p)


@pytest.mark.parametrize(
    "points, ratio, where, value",
    [
        # finite in the file, but x × aspectRatio is beyond float64 ...
        ([[0.1, 0.6, 1], [1e308, 0.5, 0]], 6, r"points\[1\]", r"1e\+308"),
        # ... or beyond float32 (the offsets' type)
        ([[0.1, 0.6, 1], [1e300, 0.5, 0]], 6, r"points\[1\]", r"1e\+300"),
        ([[1e39, 0.6, 0]], 1, r"points\[0\]", r"1e\+39"),
        # each point is in range, the move between them is not
        ([[3e38, 0.6, 1], [-3e38, 0.5, 0]], 1, r"points\[1\]", r"-3e\+38"),
    ],
)
def test_bigbank_coordinates_that_overflow_are_named(tmp_path, points, ratio, where, value):
    words = [_word("a"), _word("b", points=points, ratio=ratio)]
    path = _write_json(tmp_path / "huge.json", words)
    for max_jump in (jsonink.MAX_JUMP, None):
        with pytest.raises(DataError, match=rf"huge\.json: sample 1, field {where}: .*{value}.*too large") as exc:
            load_bigbank(path, max_jump=max_jump)
        assert "fix the point or remove the item" in str(exc.value)


@pytest.mark.parametrize(
    "strokes, where, value",
    [
        ([[[0, 0], [1e300, 1]]], r"strokes\[0\]\[1\]", r"1e\+300"),
        ([[[0, 0]], [[1, 3e38], [1, -3e38]]], r"strokes\[1\]\[1\]", r"-3e\+38"),  # only the move overflows
        ([[[1e39, 0]]], r"strokes\[0\]\[0\]", r"1e\+39"),
    ],
)
def test_own_format_coordinates_that_overflow_are_named(tmp_path, strokes, where, value):
    doc = _doc()
    doc["samples"][1]["strokes"] = strokes
    path = _write_json(tmp_path / "huge.json", doc)
    for max_jump in (jsonink.MAX_JUMP, None):
        with pytest.raises(DataError, match=rf"huge\.json: sample 1, field {where}: .*{value}.*too large.*fix"):
            load_samples(path, max_jump=max_jump)
