"""write(): determinism, lines and layout, unknown characters, priming, internals; pretrained models by name;
the `handwriting write` and `handwriting models` commands.  Tiny untrained models stand in for trained ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handwriting import checkpoint as ckpt
from handwriting.errors import ArgumentError, DataError
from handwriting.strokes import Normalizer, Sample, align, to_absolute, to_offsets

from handwriting.datasets import torch_data  # noqa: E402
from handwriting.models import graves  # noqa: E402

from handwriting import generate, pretrained  # noqa: E402
from handwriting.generate import Written, layout_lines, wrap_text, write  # noqa: E402

CHARS = " abcdefghijklmnopqrstuvwxyz."


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: exact numbers, no OpenMP spinning


def tiny_synthesis(seed: int = 0):
    torch.manual_seed(seed)
    alphabet = torch_data.Alphabet(CHARS)
    m = graves.SynthesisNetwork(graves.GravesConfig(alphabet_size=len(alphabet), hidden=12, layers=2, mixtures=3, window_mixtures=2))
    m.alphabet = alphabet
    m.normalizer = Normalizer(mean=(0.01, 0.0), std=(0.03, 0.04))
    return m.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_synthesis()


@pytest.fixture
def pretrained_dir(tmp_path, monkeypatch):
    d = tmp_path / "pretrained"
    ckpt.save_model(d / "tiny", tiny_synthesis(), {"metrics": {"nll_per_sequence": -12.5, "nll_per_point": -0.5}, "training": {"steps": 7}})
    monkeypatch.setenv("HANDWRITING_PRETRAINED", str(d))
    ckpt.LOADED.clear()
    return d


# ----------------------------------------------------------------------------------------------------------
# write()


def test_same_seed_same_handwriting(model):
    a = write("hello there", model=model, seed=11, max_steps=40)
    b = write("hello there", model=model, seed=11, max_steps=40)
    c = write("hello there", model=model, seed=12, max_steps=40)
    assert isinstance(a, Written) and isinstance(a, Sample)
    assert np.array_equal(a.offsets, b.offsets) and a.seed == 11
    assert not np.array_equal(a.offsets, c.offsets)
    assert a.offsets.dtype == np.float32 and a.offsets[-1, 2] == 1
    d = write("hello there", model=model, max_steps=10)
    assert isinstance(d.seed, int)  # a drawn seed is kept, so the result can be repeated
    assert np.array_equal(write("hello there", model=model, seed=d.seed, max_steps=10).offsets, d.offsets)


def test_denormalised_with_the_models_normaliser(model):
    w = write("ab", model=model, seed=1, max_steps=30)
    seqs = []
    orig = model.sample

    def spy(**kw):
        res = orig(**kw)
        seqs.append(res.sequences())
        return res

    model.sample = spy
    try:
        w2 = write("ab", model=model, seed=1, max_steps=30)
    finally:
        del model.sample
    np.testing.assert_allclose(w2.lines[0].offsets, model.normalizer.denormalize(seqs[0][0]), rtol=1e-6)
    assert np.array_equal(w.offsets, w2.offsets)


def test_lines_wrapped_sampled_in_one_batch_and_laid_out(model):
    calls = []
    orig = model.sample

    def spy(**kw):
        calls.append(kw["text"].shape)
        return orig(**kw)

    model.sample = spy
    try:
        out = write("the quick brown fox\njumps", model=model, seed=3, max_steps=30, max_line_chars=10, samples=2)
    finally:
        del model.sample
    assert calls == [(6, 9)]  # 3 lines × 2 samples, one call; the longest line has 9 characters
    assert isinstance(out, list) and len(out) == 2
    w = out[0]
    assert w.text == "the quick\nbrown fox\njumps" and [ln.text for ln in w.lines] == ["the quick", "brown fox", "jumps"]
    assert len(w.offsets) == sum(len(ln.offsets) for ln in w.lines)
    # top to bottom: each line's points lie lower than the previous line's baseline region, starting at x = 0
    pts = to_absolute(w.offsets)
    bounds = np.cumsum([0] + [len(ln.offsets) for ln in w.lines])
    bases = [np.percentile(pts[a:b, 1], 10) for a, b in zip(bounds[:-1], bounds[1:])]
    assert bases[0] > bases[1] > bases[2]
    assert all(abs(pts[a:b, 0].min()) < 1e-4 for a, b in zip(bounds[:-1], bounds[1:]))
    assert not np.array_equal(out[0].offsets, out[1].offsets)  # two samples differ


def test_bias_list_gives_one_sample_per_bias(model):
    out = write("ab", model=model, bias=[0.0, 1.0, 10.0], seed=2, max_steps=30)
    assert [w.bias for w in out] == [0.0, 1.0, 10.0]
    with pytest.raises(DataError, match="one bias per sample"):
        write("ab", model=model, bias=[0.0, 1.0], samples=3)


def test_unknown_characters(model):
    with pytest.raises(DataError) as e:
        write("Hello, wörld!", model=model)
    msg = str(e.value)
    for c in "H,ö!":
        assert repr(c) in msg
    assert "unknown='replace'" in msg and "4 character(s)" in msg
    w = write("Hello, wörld!", model=model, unknown="replace", seed=0, max_steps=10)
    assert w.text == " ello  w rld " and len(w.lines) == 1


def test_empty_text_and_bad_arguments(model):
    with pytest.raises(DataError, match="empty"):
        write(" \n \n", model=model)
    with pytest.raises(DataError, match="bias must be >= 0"):
        write("ab", model=model, bias=-1)


def test_priming_and_internals(model):
    prime = write("ab ab", model=model, seed=5, max_steps=25)
    plain = write("cd", model=model, seed=9, max_steps=25, return_internals=True)
    primed = write("cd", model=model, seed=9, max_steps=25, prime=Sample(prime.offsets, "ab ab"), return_internals=True)
    assert not np.array_equal(plain.offsets, primed.offsets)
    d = plain.internals[0]
    n = len(plain.lines[0].offsets)
    assert d["phi"].shape == (n, 2) and d["kappa"].shape == (n, 2) and d["pi"].shape == (n, 3)
    assert np.allclose(d["pi"].sum(-1), 1, atol=1e-5)
    assert primed.internals[0]["phi"].shape[1] == len("ab ab cd") and primed.internals[0]["full_text"] == "ab ab cd"
    same = write("cd", model=model, seed=9, max_steps=25, prime=(prime.offsets, "ab ab"))
    assert np.array_equal(same.offsets, primed.offsets)
    with pytest.raises(DataError, match="needs its text"):
        write("cd", model=model, prime=(prime.offsets, ""))


def test_a_prime_of_several_lines_continues_the_last_and_hands_the_others_to_the_model(model, monkeypatch):
    first = write("ba", model=model, seed=3, max_steps=20)
    last = write("ab ab", model=model, seed=5, max_steps=25)
    lone = write("cd", model=model, seed=9, max_steps=25, prime=Sample(last.offsets, "ab ab"))
    assert np.array_equal(write("cd", model=model, seed=9, max_steps=25, prime=[Sample(last.offsets, "ab ab")]).offsets,
                          lone.offsets)
    seen = []
    real = type(model).write_rows

    def spy(self, *args, prime=None, **kw):
        seen.append(prime)
        return real(self, *args, prime=prime, **kw)

    monkeypatch.setattr(type(model), "write_rows", spy)
    both = write("cd", model=model, seed=9, max_steps=25, prime=[Sample(first.offsets, "ba"), Sample(last.offsets, "ab ab")],
                 return_internals=True)
    assert both.internals[0]["full_text"] == "ab ab cd"  # the writing continues the last line
    (p,) = seen
    assert p.text_ids.tolist() == model.alphabet.encode("ab ab ") and len(p.offsets) == len(last.offsets)
    ((off, ids),) = p.more  # the first line, on its own text, starting at 0 like the training data
    assert ids.tolist() == model.alphabet.encode("ba")
    assert np.array_equal(off[1:], first.offsets[1:]) and not off[0, :2].any()
    with pytest.raises(DataError, match="needs its text"):
        write("cd", model=model, prime=[Sample(first.offsets, ""), Sample(last.offsets, "ab ab")])


def test_wrap_and_layout_helpers():
    assert wrap_text("one two three", 7) == ["one two", "three"]
    assert wrap_text("a\n\nb", 10) == ["a", "", "b"]
    assert wrap_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert wrap_text("\n  x  y \n\n", 10) == ["x y"]
    line = np.array([[0, 0, 0], [1, 1, 0], [1, -1, 1]], np.float32)
    out = layout_lines([line, None, line])
    pts = to_absolute(out)
    pitch = (1 + 0.6) * 1.0
    assert np.isclose(np.percentile(pts[:3, 1], 10) - np.percentile(pts[3:, 1], 10), 2 * pitch)  # a blank line between
    with pytest.raises(DataError):
        layout_lines([None])


def test_unconditional_model_cannot_write():
    m = graves.PredictionNetwork(graves.GravesConfig(hidden=8, layers=1, mixtures=2))
    m.alphabet = torch_data.Alphabet("ab")
    with pytest.raises(Exception, match="writes no text"):
        write("ab", model=m)


def _tiny_transformer():
    """A tiny untrained cursive transformer over CHARS (64 positions, 20 characters of text)."""
    from handwriting.models import transformer as tr
    from handwriting.models.tokenizer import PolarTokenizer

    tok = PolarTokenizer()
    alphabet = torch_data.Alphabet(CHARS)
    torch.manual_seed(0)
    cfg = tr.CursiveTransformerConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, d_model=16, n_head=2,
                                      text_len=20, alphabet_size=len(alphabet), tokenizer=tok.to_dict())  # fmt: skip
    m = tr.CursiveTransformer(cfg)
    m.alphabet = alphabet
    return m


def test_transformer_writes_too():
    m = _tiny_transformer()
    a = write("hi\nyou", model=m, seed=4, max_steps=30, return_internals=True)
    b = write("hi\nyou", model=m, seed=4, max_steps=30)
    assert np.array_equal(a.offsets, b.offsets) and len(a.lines) == 2
    assert a.internals[0]["attention"].ndim == 4


def test_transformer_lines_are_wrapped_to_what_fits_in_its_context():
    """A transformer cannot write past ``block_size`` positions: write(), the page writer and the panel wrap
    the text into lines that fit (at the training data's points per character, with 60% to spare)."""
    from handwriting.generate import default_line_chars
    from handwriting.generate_page import _Backend, write_page

    m = _tiny_transformer()
    assert default_line_chars(m) == 20  # no point density known: only the text context limits
    m.meta = {"training": {"points_per_char": 4.0}}  # 2 tokens per point: 64 / (2 * 4 * 1.6) = 5 characters
    assert default_line_chars(m) == 5
    prime = (np.zeros((10, 3), np.float32), "ab")  # takes 20 of the 64 positions and 3 of the 20 characters
    assert default_line_chars(m, prime) == int(44 / 12.8)
    text = "ab ba abba ab baba"
    w = write(text, model=m, seed=0, max_steps=12)
    # written in pieces that fit, joined into one line: each piece keeps its shape (turned level), middles
    # on one height, each piece to the right of the previous one
    assert [ln.text for ln in w.lines] == ["ab ba", "abba", "ab", "baba"] and w.text == text
    pts, start, right, middles = to_absolute(w.offsets), 0, None, []
    for piece in w.lines:
        own, mine = to_absolute(piece.offsets), pts[start : start + len(piece.offsets)]
        steps = lambda p: np.linalg.norm(np.diff(p[:, :2], axis=0), axis=1)  # noqa: E731
        np.testing.assert_allclose(steps(mine), steps(own), atol=1e-4)  # turned and moved, not distorted
        level = to_absolute(align(piece.offsets, slant=False))  # turned by the least-squares baseline
        np.testing.assert_allclose(mine[:, :2] - mine[0, :2], level[:, :2] - level[0, :2], atol=1e-4)
        assert mine[-1, 2] == 1  # the pen lifts between pieces
        if right is not None:
            assert mine[:, 0].min() > right
        right, start = mine[:, 0].max(), start + len(piece.offsets)
        middles.append(np.median(mine[:, 1]))
    np.testing.assert_allclose(middles, middles[0], atol=1e-4)
    assert [ln.text for ln in write(text, model=m, seed=0, max_steps=4, max_line_chars=20).lines] == [text]
    stacked = write(text, model=m, seed=0, max_steps=4, line_width=5)
    assert stacked.text.split("\n") == ["ab ba", "abba", "ab", "baba"] == [ln.text for ln in stacked.lines]
    page = write_page(text, _Backend(m, None, CHARS, "tiny"), max_chars=50)
    assert page.sample.text == text and len(page.lines) == 1
    assert write_page(text, _Backend(m, None, CHARS, "tiny"), max_chars=5).sample.text.split("\n") == stacked.text.split("\n")
    # Graves' networks are recurrent: no context limit beyond the text's, but no longer than the lines they
    # were trained on (lines stitched from at most 3 bigbank words: 3 words of 8 characters and 2 spaces)
    from handwriting.generate import trained_line_chars
    from handwriting.models.graves import GravesConfig, SynthesisNetwork

    g = SynthesisNetwork(GravesConfig(alphabet_size=5, hidden=8, layers=1))
    assert default_line_chars(g) == 50 and trained_line_chars(g) is None
    g.meta = {"training": {"data": "bigbank", "words_per_line": [1, 3]}}
    assert trained_line_chars(g) == 26 and default_line_chars(g) == 26
    assert default_line_chars(g, (np.zeros((40, 3), np.float32), "prime")) == 26 - 6  # the prime shares the text
    assert default_line_chars(g, (np.zeros((40, 3), np.float32), "a much longer prime")) == 13  # half, at least
    g.meta = {"training": {"data": "bigbank", "words_per_line": "1-2"}}
    assert default_line_chars(g) == 17
    g.meta = {"training": {"data": "synthetic", "words_per_line": [1, 3]}}  # other words: unknown lengths
    assert default_line_chars(g) == 50
    assert [ln.text for ln in write("ab ba abba ab baba ab", model=m, seed=0, max_steps=4, max_line_chars=10).lines] == [
        "ab ba abba", "ab baba ab"]


# ----------------------------------------------------------------------------------------------------------
# models by name and by path


def test_default_model_missing_says_how_to_get_one(tmp_path, monkeypatch, model):
    monkeypatch.setenv("HANDWRITING_PRETRAINED", str(tmp_path / "empty"))
    monkeypatch.setattr(pretrained, "REPO_DIR", tmp_path / "nothing")
    ckpt.LOADED.clear()
    with pytest.raises(pretrained.PretrainedError) as e:
        write("hello")
    msg = str(e.value)
    assert pretrained.DEFAULT_MODEL in msg and "handwriting train graves" in msg and "model=" in msg


def test_pretrained_by_name_and_checkpoint_by_path(pretrained_dir):
    a = write("abc", model="tiny", seed=1, max_steps=20)
    b = write("abc", model=str(pretrained_dir / "tiny"), seed=1, max_steps=20)
    c = write("abc", model=tiny_synthesis(), seed=1, max_steps=20)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.offsets, c.offsets)
    assert a.writer == "tiny"
    assert generate.resolve_model("tiny") is generate.resolve_model("tiny")  # cached for interactive use
    names = [m["name"] for m in pretrained.list_pretrained()]
    assert "tiny" in names
    info = next(m for m in pretrained.list_pretrained() if m["name"] == "tiny")
    assert info["valid_nll_per_sequence"] == -12.5 and info["steps"] == 7 and info["class"] == "SynthesisNetwork"
    with pytest.raises(pretrained.PretrainedError, match="no pretrained model named 'nope'.*available: .*tiny"):
        pretrained.load_pretrained("nope")


def test_pretrained_checksum_mismatch_refused(pretrained_dir):
    w = pretrained_dir / "tiny.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-3] ^= 0x55
    w.write_bytes(bytes(blob))
    with pytest.raises(pretrained.PretrainedError) as e:
        pretrained.load_pretrained("tiny")
    msg = str(e.value)
    assert "tiny.safetensors" in msg and "SHA-256" in msg and "retrain" in msg
    w.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    with pytest.raises(pretrained.PretrainedError, match="git lfs pull"):
        pretrained.load_pretrained("tiny")


def test_models_command(pretrained_dir, capsys):
    from handwriting.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "SynthesisNetwork" in out and "-12.5" in out
    assert main(["models", "--json", "--verify"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["verified"] is True


# ----------------------------------------------------------------------------------------------------------
# `handwriting write`


def test_write_command(pretrained_dir, tmp_path, capsys):
    from handwriting.cli import main

    out = tmp_path / "hello.svg"
    assert main(["write", "ab\\nba", "--model", "tiny", "--seed", "3", "-o", str(out), "--color", "navy", "--width", "300"]) == 0
    assert out.read_text().lstrip().startswith(("<svg", "<?xml")) and "seed 3" in capsys.readouterr().out
    png = tmp_path / "hello.png"
    assert main(["write", "ab", "--model", "tiny", "-o", str(png)]) == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["write", "aB", "--model", "tiny", "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert "'B'" in err and len(err.strip().splitlines()) == 1
    assert main(["write", "ab", "--model", "tiny", "--style", "nobody", "-o", str(tmp_path / "y.svg")]) == 2
    assert "no style named 'nobody'" in capsys.readouterr().err


def test_write_command_prime_file(pretrained_dir, tmp_path):
    from handwriting.cli import main

    from handwriting.datasets import jsonink
    prime = write("ab", model="tiny", seed=1, max_steps=20)
    jsonink.save_samples(tmp_path / "mine.json", [Sample(prime.offsets, "ab")], writer="me")
    out = tmp_path / "p.svg"
    assert main(["write", "ba", "--model", "tiny", "--prime", str(tmp_path / "mine.json"), "-o", str(out)]) == 0
    assert out.is_file()


def test_write_command_primes_with_every_sample_of_a_file(pretrained_dir, tmp_path, monkeypatch, capsys):
    """--prime-index all: the file's samples are lines of one hand, given to write() as a list in their order."""
    from handwriting import generate
    from handwriting.cli import main
    from handwriting.datasets import jsonink

    lines = [Sample(write(t, model="tiny", seed=k, max_steps=20).offsets, t) for k, t in enumerate(("ab", "ba", "abba"))]
    jsonink.save_samples(tmp_path / "mine.json", lines, writer="me")
    seen = []
    real = generate.write
    monkeypatch.setattr(generate, "write", lambda *a, **kw: seen.append(kw["prime"]) or real(*a, **kw))
    out = tmp_path / "p.svg"
    args = ["write", "ba", "--model", "tiny", "--prime", str(tmp_path / "mine.json"), "-o", str(out)]
    assert main(args + ["--prime-index", "all"]) == 0 and out.is_file()
    assert [s.text for s in seen[0]] == ["ab", "ba", "abba"]
    np.testing.assert_allclose(seen[0][2].offsets, lines[2].offsets, atol=1e-6)
    assert main(args + ["--prime-index", "2"]) == 0 and seen[1].text == "abba"
    with pytest.raises(SystemExit):
        main(args + ["--prime-index", "every"])
    assert "neither a sample's number" in capsys.readouterr().err
    jsonink.save_samples(tmp_path / "mine.json", [lines[0], Sample(lines[1].offsets, "")], writer="me")
    assert main(args + ["--prime-index", "all"]) == 2
    assert "sample 1 has no text" in capsys.readouterr().err


def test_write_help_has_examples(capsys):
    from handwriting.cli import main

    with pytest.raises(SystemExit):
        main(["write", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--bias" in out and "--prime" in out


def test_a_dense_prime_is_thinned_to_the_models_point_density():
    from handwriting.generate import match_point_density, model_points_per_char
    from handwriting.models.graves import GravesConfig, SynthesisNetwork
    from handwriting import strokes as S

    model = SynthesisNetwork(GravesConfig(alphabet_size=5, hidden=8, layers=1, kappa_scale=0.05))
    assert model_points_per_char(model) == pytest.approx(20.0)
    t = np.linspace(0, 6 * np.pi, 241)
    pts = np.stack([t / 10, np.sin(t) / 5, np.zeros_like(t)], 1)
    pts[-1, 2] = 1
    dense = S.to_offsets(pts).astype(np.float32)  # 241 points for a 4-character text: 60 per character
    thin = match_point_density(dense, "abcd", model)
    assert abs(len(thin) / 4 - 20) <= 2, len(thin)
    np.testing.assert_allclose(S.to_absolute(thin)[-1], S.to_absolute(dense)[-1], atol=1e-5)  # same shape, same end
    sparse = dense[::4].copy()
    assert match_point_density(sparse, "abcd", model) is sparse  # already sparse enough: untouched


def test_line_pieces_and_join_pieces():
    from handwriting.generate import join_pieces, line_pieces

    assert line_pieces("ab ba abba", 20) == (["ab ba abba"], [])
    assert line_pieces("ab ba abba", 5) == (["ab ba", "abba"], [True])
    assert line_pieces("abbaabba ab", 4) == (["abba", "abba", "ab"], [False, True])  # a cut word: no space
    assert line_pieces("", 4) == ([], [])
    # as few pieces as wrapping gives, as even as the words allow (not 25 + 4: the batch waits for the longest)
    assert line_pieces("the quick brown fox jumps over", 26) == (["the quick brown", "fox jumps over"], [True])
    assert line_pieces("abcdefghij", 8) == (["abcdefgh", "ij"], [False])  # a word longer than a piece: cut where it must be
    assert line_pieces("ab cd ef gh", 9) == (["ab cd", "ef gh"], [True])  # not "ab cd ef" + "gh"
    assert line_pieces("abc def", 3) == (["abc", "def"], [True])  # the space at the break is not written
    assert line_pieces("abcdefghijkl ab cd", 13) == (["abcdefghijkl", "ab cd"], [True])  # no word cut to even them
    # two level pieces (their least-squares lines are flat), 2 and 4 wide over 1 + 2 characters: a character is 2
    # wide, so the gap is 0.8 * 2; the second piece's middle (median y) is 0.5 lower, so it moves up by 0.5
    a = to_offsets(np.array([[0, 0, 0], [1, 1, 0], [2, 0, 1]], np.float32))
    b = to_offsets(np.array([[10, -1, 0], [11, 0, 0], [13, 0, 0], [14, -1, 1]], np.float32))
    joined = to_absolute(join_pieces([a, b], ["a", "bb"]))
    g = 0.8 * 2
    np.testing.assert_allclose(joined[:, :2], [[0, 0], [1, 1], [2, 0], [2 + g, -0.5], [3 + g, 0.5], [5 + g, 0.5], [6 + g, -0.5]],
                               atol=1e-5)
    assert joined[:, 2].tolist() == [0, 0, 1, 0, 0, 0, 1]
    cut = to_absolute(join_pieces([a, b], ["a", "bb"], gaps=[False]))
    assert cut[3, 0] == pytest.approx(2 + g / 5)  # a fifth of the gap where a word was cut
    tilted = to_absolute(join_pieces([to_offsets(np.array([[0, 0, 0], [4, 2, 1]], np.float32)), b], ["a", "bb"]))
    np.testing.assert_allclose(tilted[1, :2] - tilted[0, :2], [np.hypot(4, 2), 0], atol=1e-5)  # turned level
    with pytest.raises(DataError, match="no pieces"):
        join_pieces([])


def test_line_lengths_below_one_are_refused(model):
    for kw, name in ((dict(line_width=0), "line_width"), (dict(max_line_chars=0), "max_line_chars"),
                     (dict(max_line_chars=-3, line_width=20), "max_line_chars"), (dict(line_width="5"), "line_width"),
                     (dict(max_line_chars=3.5), "max_line_chars"), (dict(line_width=2.5), "line_width")):
        with pytest.raises(ArgumentError, match=f"write: {name} .*must be >= 1 .*whole number"):
            write("hello", model=model, **kw)
    with pytest.raises(ArgumentError, match="model=3: give a pretrained name"):
        write("hello", model=3)
    with pytest.raises(ArgumentError, match="style=5: give a style file"):
        write("hello", style=5)


def test_a_run_folder_as_model_names_the_checkpoints_inside(tmp_path, model):
    (tmp_path / "run").mkdir()
    ckpt.save_model(tmp_path / "run" / "best", model)
    for given in (tmp_path / "run", f"{tmp_path / 'run'}/"):
        with pytest.raises(ckpt.CheckpointError, match=r"is a folder, not a checkpoint; .*its models: .*run/best"):
            write("hello", model=given)


def test_a_bad_character_in_the_prime_or_the_text_is_named_with_its_place(model):
    prime = Sample(np.array([[0, 0, 0], [1, 1, 1]], np.float32), text="h\u00e9")
    for unknown in ("error", "replace"):  # a prime's text is never rewritten: it must say what its strokes say
        with pytest.raises(DataError, match=r"of the priming sample's text 'h\u00e9': '\u00e9' \(character 2\)"):
            write("hello", model=model, prime=prime, unknown=unknown)
    with pytest.raises(DataError, match=r"of the text: '\u00e9' \(line 2, character 3\)"):
        write("hello\nab\u00e9", model=model)

