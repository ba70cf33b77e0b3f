"""The IAM-OnDB loader, on a small fake IAM tree written by the tests (the real database needs registration)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from handwriting.datasets import iam
from handwriting.datasets.iam import load_iam, read_line_strokes, read_split, read_transcription
from handwriting.errors import DataError
from handwriting.strokes import check_offsets, to_strokes

# ----------------------------------------------------------------------------------------------------------
# a fake IAM-OnDB tree


def _xml(strokes) -> str:
    """A line file in the IAM-OnDB lineStrokes layout; ``strokes`` is a list of [(x, y), ...]."""
    out = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        "<WhiteboardCaptureSession>",
        "  <WhiteboardDescription>",
        '    <SensorLocation corner="top_left"/>',
        '    <DiagonallyOppositeCoords x="6512" y="1376"/>',
        '    <VerticallyOppositeCoords x="966" y="1376"/>',
        '    <HorizontallyOppositeCoords x="6512" y="787"/>',
        "  </WhiteboardDescription>",
        "  <StrokeSet>",
    ]
    t = 100.0
    for s in strokes:
        out.append(f'    <Stroke colour="black" start_time="{t:.2f}" end_time="{t + 0.01 * len(s):.2f}">')
        for x, y in s:
            out.append(f'      <Point x="{x}" y="{y}" time="{t:.2f}"/>')
            t += 0.01
        out.append("    </Stroke>")
    out += ["  </StrokeSet>", "</WhiteboardCaptureSession>", ""]
    return "\n".join(out)


def _wiggle(x0: int, y0: int, n: int = 12, seed: int = 0) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    steps = rng.integers(-15, 16, size=(n, 2))
    steps[:, 0] = np.abs(steps[:, 0]) + 5
    pts = np.array([x0, y0]) + np.cumsum(steps, axis=0)
    return [(int(x), int(y)) for x, y in pts]


FIRST_LINE = [[(1100, 1050), (1110, 1030), (1120, 1020)], [(1150, 1000)], _wiggle(1200, 1040, seed=1)]

TEXTS = {
    "a01-000u": ["Quiet rivers carry old songs", "past the mill and the bridge", "where herons wait for dusk."],
    "a01-000x": ["Seven lanterns, one door:", "nobody remembers the key."],
    "a08-551z": [f"line number {k} of the broken form" for k in range(1, 10)],
    "b02-100": ["Validation lines come from the v set."],
}


def _write_form(root: Path, form: str, lines: dict[int, str], ascii_lines: list[str] | None, strokes_dir="lineStrokes",
                ascii_dir="ascii"):
    group, sub = form[:3], form[:7]
    d = root / strokes_dir / group / sub
    d.mkdir(parents=True, exist_ok=True)
    for k, content in lines.items():
        (d / f"{form}-{k:02d}.xml").write_text(content, encoding="latin-1")
    if ascii_lines is not None:
        a = root / ascii_dir / group / sub
        a.mkdir(parents=True, exist_ok=True)
        ocr = "\n".join(ascii_lines[:2])
        csr = "\n".join(ascii_lines)
        (a / f"{form}.txt").write_text(f"OCR:\n\n{ocr}\n\nCSR:\n\n{csr}\n\n", encoding="latin-1")


def _build(root: Path, strokes_dir="lineStrokes", ascii_dir="ascii") -> Path:
    kw = dict(strokes_dir=strokes_dir, ascii_dir=ascii_dir)
    outlier = [_wiggle(1000, 1000, seed=2), [(3500, 1000), (3510, 990)], _wiggle(1100, 1000, seed=3)]
    _write_form(root, "a01-000u", {1: _xml(FIRST_LINE), 2: _xml([_wiggle(900, 1000, seed=4)]),
                                   3: _xml([_wiggle(1000, 1100, seed=5), _wiggle(1300, 1100, seed=6)])},
                TEXTS["a01-000u"], **kw)
    # line 2 above is fine; make line 2 an outlier instead (a pen move of 2,400 units inside a stroke)
    (root / strokes_dir / "a01" / "a01-000" / "a01-000u-02.xml").write_text(
        _xml([outlier[0] + outlier[1], outlier[2]]), encoding="latin-1")
    _write_form(root, "a01-000x", {1: _xml([_wiggle(800, 900, seed=7)]), 2: _xml([_wiggle(800, 950, seed=8)])},
                TEXTS["a01-000x"], **kw)
    _write_form(root, "a08-551z", {7: _xml([_wiggle(700, 700, seed=9)]),
                                   8: "<WhiteboardCaptureSession><StrokeSet><Stroke>",  # broken: skipped unparsed
                                   9: _xml([[(1, 1), (99999, 1)]])}, TEXTS["a08-551z"], **kw)
    _write_form(root, "b02-100", {1: _xml([_wiggle(600, 600, seed=10)])}, TEXTS["b02-100"], **kw)
    (root / "trainset.txt").write_text("a01-000u\na08-551z\n")
    (root / "split").mkdir()
    (root / "split" / "testset_f.txt").write_text("a01-000x\n")
    (root / "split" / "testset_t.txt").write_text("\n")
    (root / "split" / "testset_v.txt").write_text("b02-100\n")
    return root


@pytest.fixture
def iam_root(tmp_path) -> Path:
    return _build(tmp_path / "iam")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<WhiteboardCaptureSession><StrokeSet><Stroke><Point x="1" y="2" time="&lol9;"/></Stroke></StrokeSet>
</WhiteboardCaptureSession>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE w [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<WhiteboardCaptureSession><StrokeSet><Stroke><Point x="1" y="2" time="&secret;"/></Stroke></StrokeSet>
</WhiteboardCaptureSession>
"""


# ----------------------------------------------------------------------------------------------------------
# loading


def test_train_split_is_trainset_plus_f_plus_t(iam_root):
    s = load_iam(iam_root, "train")
    assert [x.source for x in s] == ["a01-000u-01.xml", "a01-000u-03.xml", "a08-551z-07.xml",
                                     "a01-000x-01.xml", "a01-000x-02.xml"]
    assert [x.text for x in s] == [TEXTS["a01-000u"][0], TEXTS["a01-000u"][2], TEXTS["a08-551z"][6],
                                   TEXTS["a01-000x"][0], TEXTS["a01-000x"][1]]
    r = s.report
    assert r.loaded == 5 and r.forms == 3
    assert r.skipped_broken == ["a08-551z-08", "a08-551z-09"]
    assert r.dropped_outliers == ["a01-000u-02"]
    assert "1 outliers dropped" in r.summary() and "2 known broken lines skipped" in str(r)
    for x in s:
        check_offsets(x.offsets, where=x.source)
        assert x.offsets.dtype == np.float32 and x.writer is None


def test_conversion_flips_y_translates_and_is_exact(iam_root):
    first = load_iam(iam_root, "train", limit=1)[0]
    assert first.num_strokes == 3
    strokes = to_strokes(first.offsets)
    # first point at the origin; y flipped (the whiteboard's y grows downwards); integers stay exact
    np.testing.assert_array_equal(strokes[0], [[0, 0], [10, 20], [20, 30]])
    np.testing.assert_array_equal(strokes[1], [[50, 50]])  # a one-point stroke (a dot) is kept
    expected = np.array(FIRST_LINE[2], dtype=np.float64) * [1, -1] - [1100, -1050]
    np.testing.assert_array_equal(strokes[2], expected)
    assert first.offsets[:, 2].tolist() == [0, 0, 1, 1] + [0] * 11 + [1]


def test_valid_and_single_split_files(iam_root):
    assert [x.source for x in load_iam(iam_root, "valid")] == ["b02-100-01.xml"]
    assert [x.source for x in load_iam(iam_root, "testset_f")] == ["a01-000x-01.xml", "a01-000x-02.xml"]
    everything = load_iam(iam_root, "all")
    assert len(everything) == 6 and everything.report.forms == 4
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_iam(iam_root, "test")


def test_options_outliers_skip_limit(iam_root):
    s = load_iam(iam_root, "trainset", max_offset=None)
    assert "a01-000u-02.xml" in [x.source for x in s] and s.report.dropped_outliers == []
    assert len(load_iam(iam_root, "train", limit=2)) == 2
    tight = load_iam(iam_root, "trainset", max_offset=25)  # pen-up moves between strokes are larger
    assert tight.report.dropped_outliers == ["a01-000u-01", "a01-000u-02", "a01-000u-03"]
    assert [x.source for x in tight] == ["a08-551z-07.xml"]
    # without the skip list, the broken line 08 is parsed and reported by name
    with pytest.raises(DataError, match=r"a08-551z-08\.xml: malformed XML at line 1"):
        load_iam(iam_root, "trainset", skip=())
    lenient = load_iam(iam_root, "trainset", skip=(), strict=False)
    assert lenient.report.malformed == ["a08-551z-08"]
    assert lenient.report.dropped_outliers == ["a01-000u-02", "a08-551z-09"]  # a 99,998-unit move


def test_lines_listed_individually_in_a_split_file(iam_root):
    (iam_root / "trainset.txt").write_text("# comment\na01-000u-03\n\na01-000x\n")
    assert [x.source for x in load_iam(iam_root, "trainset")] == ["a01-000u-03.xml", "a01-000x-01.xml",
                                                                   "a01-000x-02.xml"]


def test_all_layout_as_unpacked_from_the_tarballs(tmp_path):
    root = _build(tmp_path / "iam2", strokes_dir="lineStrokes-all/lineStrokes", ascii_dir="ascii-all/ascii")
    assert len(load_iam(root, "train")) == 5


# ----------------------------------------------------------------------------------------------------------
# bad input


def test_missing_transcription(iam_root):
    ascii_file = iam_root / "ascii" / "a01" / "a01-000" / "a01-000x.txt"
    ascii_file.unlink()
    expected = r"a01-000x-01\.xml: no transcription: expected .*ascii/a01/a01-000/a01-000x\.txt"
    with pytest.raises(DataError, match=expected):
        load_iam(iam_root, "train")
    s = load_iam(iam_root, "train", strict=False)
    assert s.report.missing_text == ["a01-000x-01", "a01-000x-02"] and len(s) == 3


def test_line_beyond_the_transcription(iam_root):
    d = iam_root / "lineStrokes" / "a01" / "a01-000"
    (d / "a01-000x-05.xml").write_text(_xml([_wiggle(10, 10)]))
    expected = r"a01-000x-05\.xml: no transcription: .*a01-000x\.txt has 2 lines after 'CSR:' but this is line 5"
    with pytest.raises(DataError, match=expected):
        load_iam(iam_root, "testset_f")


def test_malformed_xml_names_the_file(iam_root):
    bad = iam_root / "lineStrokes" / "a01" / "a01-000" / "a01-000x-02.xml"
    bad.write_text(_xml([_wiggle(10, 10)])[:300])  # truncated
    with pytest.raises(DataError, match=r"a01-000x-02\.xml: malformed XML at line \d+, column \d+"):
        load_iam(iam_root, "testset_f")
    assert load_iam(iam_root, "testset_f", strict=False).report.malformed == ["a01-000x-02"]


@pytest.mark.parametrize(
    "content, message",
    [
        (BILLION_LAUGHS, r"refused unsafe XML \(DTDForbidden"),
        (EXTERNAL_ENTITY, r"refused unsafe XML"),
        (_xml([[(1, 2), ("abc", 3)]]), r"stroke 0, point 1: x='abc'"),
        (_xml([[(1, 2)], [(5, 6), (7, "nan")]]), r"stroke 1, point 1: x='7', y='nan'"),
        (_xml([[(1, 2)]]).replace(' y="2"', ""), r"stroke 0, point 0: x='1', y=None"),
        ("<html><body>not a line file</body></html>", r"no <StrokeSet> element"),
        ("", r"malformed XML"),
    ],
)
def test_unsafe_or_bad_line_files_raise_quickly(iam_root, content, message):
    evil = iam_root / "lineStrokes" / "a01" / "a01-000" / "a01-000x-02.xml"
    evil.write_text(content)
    t = time.process_time()
    with pytest.raises(DataError, match=rf"a01-000x-02\.xml: .*{message}"):
        load_iam(iam_root, "testset_f")
    assert time.process_time() - t < 2.0
    with pytest.raises(DataError, match=message):
        read_line_strokes(evil)


def test_empty_line_file_is_skipped_and_counted(iam_root):
    (iam_root / "lineStrokes" / "a01" / "a01-000" / "a01-000x-02.xml").write_text(_xml([[]]))
    s = load_iam(iam_root, "testset_f")
    assert len(s) == 1 and s.report.empty == ["a01-000x-02"]


def test_bad_layout_and_split_files(tmp_path, iam_root):
    with pytest.raises(DataError, match=r"nowhere: IAM-OnDB folder not found"):
        load_iam(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "lineStrokes").mkdir()
    with pytest.raises(DataError, match=r"half: no ascii/ folder inside; unpack ascii-all\.tar\.gz"):
        load_iam(tmp_path / "half")
    (iam_root / "split" / "testset_v.txt").unlink()
    with pytest.raises(DataError, match=r"split file testset_v\.txt not found.*IAM-OnDB-t1"):
        load_iam(iam_root, "valid")
    (iam_root / "trainset.txt").write_text("a01-000u\nthis is not an id\n")
    with pytest.raises(DataError, match=r"trainset\.txt, line 2: 'this is not an id' is not an IAM-OnDB form id"):
        load_iam(iam_root, "train")
    (iam_root / "trainset.txt").write_text("z99-999\n")
    with pytest.raises(DataError, match=r"no usable lines for split 'trainset'.*1 forms without line files"):
        load_iam(iam_root, "trainset")


def test_readers(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("OCR:\n\nsomething else\n\nCSR:\n\n  first line \nsecond line\n\n\n")
    assert read_transcription(p) == ["first line", "second line"]
    p.write_bytes("CSR:\n\ncaf\xe9 au lait\n".encode("latin-1"))  # IAM files are Latin-1
    assert read_transcription(p) == ["café au lait"]
    p.write_text("OCR:\n\nno csr block\n")
    with pytest.raises(DataError, match=r"f\.txt: no 'CSR:' line"):
        read_transcription(p)
    s = tmp_path / "set.txt"
    s.write_text("a01-000u\n a01-000x \na01-000u\n\n")
    assert read_split(s) == ["a01-000u", "a01-000x"]
    assert iam.SPLITS["train"] == ("trainset", "testset_f", "testset_t") and iam.SPLITS["valid"] == ("testset_v",)
    assert iam.BROKEN_LINES == {"a08-551z-08", "a08-551z-09"} and iam.MAX_OFFSET == 1000


@pytest.mark.parametrize(
    "strokes, message",
    [
        ([[(1, 2), (3, 4)], [(5, 6), ("1e300", 7)]], r"stroke 1, point 1: x=1e\+300, y=7"),  # beyond float32
        ([[(1, 2), ("3e38", 4)], [("-3e38", 6)]], r"stroke 1, point 0: x=-3e\+38, y=6"),  # only the move overflows
    ],
)
def test_coordinates_that_overflow_are_named(iam_root, strokes, message):
    bad = iam_root / "lineStrokes" / "a01" / "a01-000" / "a01-000x-02.xml"
    bad.write_text(_xml(strokes))
    for max_offset in (iam.MAX_OFFSET, None):  # not mistaken for an outlier, nor loaded as inf
        with pytest.raises(DataError, match=rf"a01-000x-02\.xml: {message}.*too large.*lineStrokes-all\.tar\.gz"):
            load_iam(iam_root, "testset_f", max_offset=max_offset)
    s = load_iam(iam_root, "testset_f", max_offset=None, strict=False)
    assert s.report.malformed == ["a01-000x-02"] and all(np.isfinite(x.offsets).all() for x in s)


def test_iam_lines_join_the_many_hands_mix(iam_root, bigbank_path, synthbank_path):
    """--data hands+iam:PATH: bigbank + synthbank words as for hands (same split) plus IAM's lines, official
    split, matched to the words' ink and marked as lines of their own; the defaults are bigbank's."""
    from handwriting.datasets.sources import is_cursive_data, load_data
    from handwriting.datasets.writers import LINE_SOURCE, split_lines

    opts = dict(seed=0, valid_fraction=0.1, limit=200, bigbank=str(bigbank_path))
    train_h, valid_h, _ = load_data({**opts, "data": "hands"})
    train, valid, info = load_data({**opts, "data": f"hands+iam:{iam_root}"})
    words, lines = split_lines(train)
    assert [s.text for s in words] == [s.text for s in train_h] and lines
    assert {s.text for s in lines} <= {s.text for s in load_iam(iam_root, "train")}
    assert all(s.source.startswith(LINE_SOURCE) for s in lines)
    assert [s.text for s in split_lines(valid)[0]] == [s.text for s in valid_h] and split_lines(valid)[1]
    assert info["hands"] is True and len(info["lines_of_other_writers"]) == 1
    assert info["data_sha256"] != load_data({**opts, "data": "hands"})[2]["data_sha256"]
    assert is_cursive_data(f"hands+iam:{iam_root}") and not is_cursive_data(f"bigbank+iam:{iam_root}")
    with pytest.raises(DataError, match="hands\\+iam:PATH"):
        load_data({**opts, "data": "hands+synthetic", "synthetic": 10})


def test_the_reader_for_any_hand_takes_iam_lines_too(iam_root, bigbank_path, synthbank_path, capsys):
    from handwriting.models.recognizer import RecognizerConfig
    from handwriting.cli import main as cli_main
    from handwriting.train.recipes import recognizer_data

    kw = dict(bigbank=str(bigbank_path), synthbank=str(synthbank_path), limit=60, synthetic=10, hands=True)
    base = recognizer_data(RecognizerConfig(), **kw)
    mixed = recognizer_data(RecognizerConfig(), iam=str(iam_root), **kw)
    n = mixed.info["iam_lines"]
    assert 0 < n <= len(load_iam(iam_root, "train")) and "iam_lines" not in base.info
    assert len(mixed.train) == len(base.train) + n and [s.text for s in mixed.valid_words] == [s.text for s in base.valid_words]
    assert cli_main(["train", "recognizer", "--data", f"bigbank+iam:{iam_root}", "--steps", "1"]) != 0
    assert "hands+iam:PATH" in capsys.readouterr().err


def test_a_generator_trains_on_hands_with_iam_lines(iam_root, bigbank_path, synthbank_path, tmp_path):
    """`handwriting train graves --data hands+iam:PATH` end to end (tiny, two steps): IAM's lines are in the
    run's training and validation items as they are, and the recorded data names both."""
    from handwriting import checkpoint as ckpt
    from handwriting.cli import main as cli_main
    from handwriting.datasets.sources import load_data
    from handwriting.datasets.writers import ManyHands, split_lines

    out = tmp_path / "run"
    rc = cli_main(["train", "graves", "--data", f"hands+iam:{iam_root}", "--size", "tiny", "--steps", "2",
                   "--limit", "40", "--lines", "8", "--valid-lines", "4", "--bigbank", str(bigbank_path),
                   "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    training = ckpt.read_meta(out / "final")["training"]
    assert training["hands"] is True and len(training["lines_of_other_writers"]) == 1
    train, valid, _ = load_data(dict(seed=0, valid_fraction=0.1, limit=40, bigbank=str(bigbank_path),
                                     data=f"hands+iam:{iam_root}"))
    words, lines = split_lines(train)
    mh = ManyHands(words, (1, 3), num_lines=8, seed=0, lines=lines)
    assert len(mh) == 8 + len(lines) and [mh[8 + i] for i in range(len(lines))] == lines
