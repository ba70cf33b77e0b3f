"""`handwriting page`: a text file → a page of handwriting in every format; bad input → one line, non-zero."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from handwriting.cli import main
from handwriting.export import parse_gcode
from handwriting.generate_page import check_alphabet, read_text
from handwriting.errors import DataError

TEXT = "Dear Ada,\nthank you for the letter; it made my day.\n\nYours, Charles\n"


@pytest.fixture
def letter(tmp_path):
    p = tmp_path / "letter.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def page(*args) -> int:
    return main(["page", *map(str, args), "--quiet"])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("handwriting page: error: ")
    return err


def test_svg_png_gcode_end_to_end(letter, tmp_path, capsys):
    svg, png, gcode = tmp_path / "p.svg", tmp_path / "p.png", tmp_path / "out" / "p.gcode"
    assert page(letter, "-o", svg, "--model", "synthetic:neat", "--max-chars", "24", "--stroke-width", "3") == 0
    assert "wrote" in capsys.readouterr().out
    root = ET.parse(svg).getroot()
    paths = root.findall("{http://www.w3.org/2000/svg}g/{http://www.w3.org/2000/svg}path")
    assert len(paths) > 10 and root.find("{http://www.w3.org/2000/svg}g").get("stroke-width") == "3"
    title = root.find("{http://www.w3.org/2000/svg}title").text
    assert title.splitlines()[0] == "Dear Ada," and "Yours, Charles" in title

    assert page(letter, "-o", png, "--model", "synthetic:hasty", "--color", "navy", "--bias", "2") == 0
    from PIL import Image

    with Image.open(png) as im:
        im.load()
        assert im.width > 200 and im.height > 100
        assert np.asarray(im.convert("L")).min() < 128  # there is ink

    assert page(letter, "-o", gcode, "--model", "synthetic", "--width", "150") == 0
    strokes = parse_gcode(gcode.read_text())
    assert len(strokes) > 10
    pts = np.vstack(strokes)
    assert abs(np.ptp(pts[:, 0]) - 150) < 0.01  # --width is the page width in mm for G-code


def test_same_seed_same_page_and_paragraph_gap(letter, tmp_path):
    a, b, c = tmp_path / "a.svg", tmp_path / "b.svg", tmp_path / "c.svg"
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        assert page(letter, "-o", out, "--model", "synthetic", "--seed", seed) == 0
    assert a.read_text() == b.read_text() != c.read_text()


def test_the_real_write_path_with_a_small_checkpoint(tmp_path, capsys):
    import torch
    from handwriting.checkpoint import save_model
    from handwriting.datasets.torch_data import Alphabet
    from handwriting.models.graves import SynthesisNetwork
    from handwriting.strokes import Normalizer

    torch.manual_seed(0)
    alphabet = Alphabet("abcdefghijklmnopqrstuvwxyz ,.")
    m = SynthesisNetwork(hidden=8, layers=1, mixtures=2, window_mixtures=2, alphabet_size=len(alphabet))
    m.alphabet, m.normalizer = alphabet, Normalizer((0.0, 0.0), (0.02, 0.02))
    save_model(tmp_path / "tiny", m)
    src = tmp_path / "in.txt"
    src.write_text("ab ba ab\n\nba\n", encoding="utf-8")
    out = tmp_path / "tiny.svg"
    assert page(src, "-o", out, "--model", tmp_path / "tiny", "--max-chars", "5", "--batch-size", "2") == 0
    assert ET.parse(out).getroot().tag.endswith("svg")

    bad = tmp_path / "bad.txt"
    bad.write_text("Hello, world 2\nok\n", encoding="utf-8")
    assert page(bad, "-o", out, "--model", tmp_path / "tiny") == 2
    err = one_line_error(capsys)
    assert "2 characters the model cannot write" in err
    assert "'H' at 1:1" in err and "'2' at 1:14" in err
    assert page(bad, "-o", tmp_path / "r.svg", "--model", tmp_path / "tiny", "--unknown", "replace") == 0

    # in the style of a saved sample (primed); its text must be writable too
    from handwriting.datasets.jsonink import save_samples
    from handwriting.datasets.synthetic import synthesize

    mine = save_samples(tmp_path / "mine.json", synthesize(["ab", "Ab"], writer="neat"), writer="me")
    assert page(src, "-o", tmp_path / "primed.svg", "--model", tmp_path / "tiny", "--prime", mine) == 0
    assert page(src, "-o", out, "--model", tmp_path / "tiny", "--prime", mine, "--prime-index", "1") == 2
    assert "sample 1 (its text)" in one_line_error(capsys)
    assert page(src, "-o", out, "--model", tmp_path / "tiny", "--prime", mine, "--prime-index", "5") == 2
    assert "--prime-index 5 is out of range (the file has 2 samples)" in one_line_error(capsys)


@pytest.mark.parametrize(
    "setup, args, expect",
    [
        (None, ["missing.txt"], "missing.txt: no such file"),
        (b"", ["in.txt"], "no text to write"),
        (b"caf\xe9\nok\n", ["in.txt"], "not UTF-8 text (byte 0xe9 at line 1, column 4)"),
        ("na\u00efve \u20ac5\n\tok\n".encode(), ["in.txt"], "2 characters the model cannot write"),
        (b"fine\n", ["in.txt", "--max-chars", "0"], "--max-chars must be at least 1"),
        (b"fine\n", ["in.txt", "--bias", "-1"], "--bias must be >= 0"),
        (b"fine\n", ["in.txt", "--model", "synthetic:nobody"], "no synthetic writer 'nobody'"),
    ],
)
def test_bad_input_one_line_nonzero(tmp_path, capsys, setup, args, expect):
    if setup is not None:
        (tmp_path / "in.txt").write_bytes(setup)
    args = [tmp_path / args[0], *args[1:]]
    if "--model" not in args:
        args += ["--model", "synthetic"]
    out = tmp_path / "o.svg"
    assert page(*args, "-o", out) == 2
    assert expect in one_line_error(capsys)
    assert not out.exists()


def test_bad_output_fails_before_generating(letter, tmp_path, capsys, monkeypatch):
    import handwriting.generate_page as gp

    def boom(*a, **k):
        raise AssertionError("generated before checking the output")

    monkeypatch.setattr(gp, "_backend", boom)
    assert page(letter, "-o", tmp_path / "page.bmp", "--model", "synthetic") == 2
    assert "unknown file type '.bmp'" in one_line_error(capsys)
    assert page(letter, "-o", tmp_path, "--model", "synthetic") == 2
    assert "is a directory" in one_line_error(capsys)


def test_no_pretrained_model_is_a_clear_error(letter, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HANDWRITING_PRETRAINED", str(tmp_path / "none"))
    assert page(letter, "-o", tmp_path / "x.svg", "--model", "no-such-model") == 2
    assert "no pretrained model named 'no-such-model'" in one_line_error(capsys)


def test_stdin_and_help(tmp_path, monkeypatch, capsys):
    class In:
        buffer = io.BytesIO(b"from stdin\n")

    monkeypatch.setattr("sys.stdin", In())
    out = tmp_path / "s.svg"
    assert page("-", "-o", out, "--model", "synthetic") == 0 and out.is_file()
    with pytest.raises(SystemExit) as exc:
        main(["page", "--help"])
    assert exc.value.code == 0
    assert "handwriting page letter.txt -o letter.svg" in capsys.readouterr().out


def test_helpers():
    assert check_alphabet("ab\nba", "ab") == "ab\nba"
    assert check_alphabet("a\tb", "ab ") == "a\tb"
    assert check_alphabet("aXb\nc", "abc?", replace=True) == "a?b\nc"
    with pytest.raises(DataError, match=r"13 characters .*'x' at 2:3, .* and 1 more"):
        check_alphabet("ab\naax" + "x" * 12, "ab")
    with pytest.raises(DataError, match="is a directory"):
        read_text(".")
