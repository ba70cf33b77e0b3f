"""Every bad input gets a named error of the package, checked before the work (issue #14): write(), the
`write`, `page` and `evaluate` commands, and the output check they share.  In the bad-input tests the
generation is replaced by a function that fails the test if it is reached."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from handwriting import evaluate as ev
from handwriting import generate as gen
from handwriting import generate_page as gp
from handwriting import pretrained
from handwriting.cli import main
from handwriting.errors import HandwritingError, OutputError
from handwriting.export import check_output, save

TINY = "graves-synthesis-tiny"


def _boom(*args, **kwargs):
    raise AssertionError("the work started before the input was checked")


@pytest.fixture
def no_work(monkeypatch):
    """Writing, loading a generator, laying out a page and evaluating all fail the test if reached."""
    for obj, name in ((gen, "_write_rows"), (pretrained, "load_pretrained"), (gp, "_backend"), (ev, "write_lines")):
        monkeypatch.setattr(obj, name, _boom)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "cuda" means: no GPU here


@pytest.fixture
def tiny_model():
    from handwriting.datasets.torch_data import Alphabet
    from handwriting.models.graves import GravesConfig, SynthesisNetwork
    from handwriting.strokes import Normalizer

    torch.manual_seed(0)
    alphabet = Alphabet(" abcdefghijklmnopqrstuvwxyz")
    m = SynthesisNetwork(GravesConfig(alphabet_size=len(alphabet), hidden=8, layers=1, mixtures=2, window_mixtures=2))
    m.alphabet, m.normalizer = alphabet, Normalizer((0.01, 0.0), (0.03, 0.04))
    return m.eval()


def _locked(monkeypatch, folder: Path) -> Path:
    """Make ``folder`` refuse new files (chmod does not stop root, who runs the tests in containers)."""
    import handwriting.export

    folder.mkdir()
    real = handwriting.export.tempfile.TemporaryFile

    def temporary_file(*args, dir=None, **kwargs):
        if Path(dir) == folder:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(handwriting.export.tempfile, "TemporaryFile", temporary_file)
    return folder


def _cli_error(capsys, command: str, argv: list) -> str:
    """Run the command in-process: exit code 2 and one line on stderr, no traceback; returns that line."""
    assert main([command, *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"handwriting {command}: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------------------------------------
# write()


@pytest.mark.parametrize(
    "kwargs, named, value",
    [
        (dict(bias="high"), "bias", "'high'"),
        (dict(bias=math.nan), "bias", "nan"),
        (dict(bias=math.inf), "bias", "inf"),
        (dict(bias=[0.5, math.nan]), "bias", "nan"),
        (dict(seed=2**80), "seed", str(2**80)),
        (dict(seed=-1), "seed", "-1"),
        (dict(seed=1.5), "seed", "1.5"),
        (dict(max_steps=0), "max_steps", "0"),
        (dict(samples=0), "samples", "0"),
        (dict(device="tpu"), "device", "'tpu'"),
        (dict(device="cuda"), "device", "'cuda'"),
        (dict(unknown="ignore"), "unknown", "'ignore'"),
        (dict(line_gap=math.nan), "line_gap", "nan"),
        (dict(line_gap=-1.0), "line_gap", "-1.0"),
        (dict(line_gap=math.inf), "line_gap", "inf"),
    ],
)
def test_write_refuses_bad_arguments(no_work, tiny_model, kwargs, named, value):
    with pytest.raises(HandwritingError) as e:
        gen.write("ab ab", model=tiny_model, **kwargs)
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and named in msg and value in msg, msg
    assert "cpu" in msg if named == "device" else "must be" in msg  # what is allowed


def test_write_takes_the_full_seed_range(tiny_model):
    a = gen.write("ab", model=tiny_model, seed=gen.MAX_SEED, max_steps=5)
    assert a.seed == gen.MAX_SEED and np.isfinite(a.offsets).all()


# ----------------------------------------------------------------------------------------------------------
# the output check


def test_check_output(tmp_path, monkeypatch):
    assert check_output(tmp_path / "a.svg") == "svg" and check_output(tmp_path / "new" / "dir" / "a.PNG") == "png"
    assert check_output(tmp_path / "results.txt", formats=None) is None
    (tmp_path / "file").write_text("x")
    locked = _locked(monkeypatch, tmp_path / "locked")
    for path, says in [
        (tmp_path / "a.xyz", "unknown file type '.xyz'; use one of"),
        (tmp_path, "is a directory"),
        (tmp_path / "file" / "a.svg", "is a file, not a directory"),
        (locked / "a.svg", f"cannot create a file in {locked} (Permission denied)"),
        (locked / "new" / "a.svg", f"cannot create a file in {locked} (Permission denied)"),
    ]:
        with pytest.raises(OutputError, match="choose|use one of|give a file path") as e:
            check_output(path)
        assert says in str(e.value) and str(path) in str(e.value)
    with pytest.raises(OutputError):
        save(None, tmp_path / "a.xyz")


def test_a_bad_colour_is_named_in_every_format(tmp_path):
    from handwriting.strokes import Sample

    s = Sample(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.float32), "x")
    for suffix in (".svg", ".png", ".html"):
        with pytest.raises(HandwritingError, match="cannot read the colour 'bad'"):
            save(s, tmp_path / f"x{suffix}", color="bad")
        assert not (tmp_path / f"x{suffix}").exists()


# ----------------------------------------------------------------------------------------------------------
# the commands: one line, non-zero, before any work


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--seed", 2**80], "seed must be from 0 to"),
        (["--seed", -1], "seed must be from 0 to"),
        (["--bias", "nan"], "bias must be >= 0"),
        (["--device", "tpu"], "device 'tpu'"),
        (["--device", "cuda"], "device 'cuda' asked for, but this PyTorch sees no CUDA GPU"),
        (["-o", "{tmp}/x.xyz"], "unknown file type '.xyz'"),
        (["-o", "{tmp}/file/x.svg"], "is a file, not a directory"),
        (["-o", "{tmp}/locked/new/x.svg"], "cannot create a file in"),
        (["-o", "{tmp}/x.png", "--color", "bad"], "--color: cannot read the colour 'bad'"),
        (["-o", "{tmp}/x.png", "--width", "0"], "--width must be >= 1"),
    ],
)
def test_write_command(no_work, tmp_path, capsys, monkeypatch, argv, says):
    (tmp_path / "file").write_text("x")
    _locked(monkeypatch, tmp_path / "locked")
    argv = [str(a).format(tmp=tmp_path) for a in argv]
    if "-o" not in argv:
        argv += ["-o", tmp_path / "x.svg"]
    assert says in _cli_error(capsys, "write", ["ab", "--model", TINY, *argv])
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize(
    "argv, says",
    [
        (["-o", "{tmp}/x.html", "--color", "bad"], "--color: cannot read the colour 'bad'"),
        (["-o", "{tmp}/x.svg", "--color", "bad"], "--color: cannot read the colour 'bad'"),
        (["-o", "{tmp}/x.xyz"], "unknown file type '.xyz'"),
        (["-o", "{tmp}/locked/x.svg"], "cannot create a file in"),
        (["--bias", "nan"], "--bias must be >= 0"),
        (["--seed", 2**64], "--seed must be from 0 to"),
        (["--line-gap", "nan"], "--line-gap must be >= 0"),
        (["--line-gap", "-1"], "--line-gap must be >= 0"),
        (["--device", "tpu"], "device 'tpu'"),
    ],
)
def test_page_command(no_work, tmp_path, capsys, monkeypatch, argv, says):
    (tmp_path / "in.txt").write_text("hello there\n")
    _locked(monkeypatch, tmp_path / "locked")
    argv = [str(a).format(tmp=tmp_path) for a in argv]
    if "-o" not in argv:
        argv += ["-o", tmp_path / "x.svg"]
    assert says in _cli_error(capsys, "page", [tmp_path / "in.txt", "--model", "synthetic", "--quiet", *argv])
    assert not list(tmp_path.glob("x.*"))


def test_page_seeds_near_the_top_of_the_range_wrap(tmp_path, tiny_model):
    backend = gp._Backend(tiny_model, None, " abcdefghijklmnopqrstuvwxyz", "tiny")
    page = gp.write_page("ab\nba\nab", backend, seed=gen.MAX_SEED, batch_size=1, max_chars=5)
    assert len(page.lines) == 3


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--batch", 0], "batch (--batch) must be >= 1"),
        (["-n", 0], "n (-n) must be >= 1"),
        (["--beam", 0], "beam_width (--beam) must be >= 1"),
        (["--bias", "1", "nan"], "--bias must be >= 0"),
        (["--seed", -1], "seed (--seed) must be from 0 to"),
        (["--device", "tpu"], "device 'tpu'"),
        (["--recognizer", TINY], f"recognizer '{TINY}' is a SynthesisNetwork, a handwriting generator, not a recognizer"),
        (["--json", "{tmp}/locked/out.json"], "cannot create a file in"),
        (["--json", "{tmp}"], "is a directory"),
    ],
)
def test_evaluate_legibility_command(no_work, tmp_path, capsys, monkeypatch, argv, says):
    _locked(monkeypatch, tmp_path / "locked")
    argv = [str(a).format(tmp=tmp_path) for a in argv]
    assert says in _cli_error(capsys, "evaluate", ["legibility", "--model", TINY, *argv])


def test_evaluate_reference_command(no_work, tmp_path, capsys, monkeypatch):
    assert "n (-n) must be >= 1" in _cli_error(capsys, "evaluate", ["reference", "-n", 0])
    locked = _locked(monkeypatch, tmp_path / "locked")
    assert "cannot create a file in" in _cli_error(capsys, "evaluate", ["reference", "--json", locked / "r.json"])


def test_load_recognizer_refuses_a_generator(tiny_model):
    with pytest.raises(ev.EvaluateError, match="is a SynthesisNetwork, a handwriting generator, not a recognizer"):
        ev.load_recognizer(tiny_model)
    with pytest.raises(HandwritingError, match="device 'tpu'"):
        ev.load_recognizer(tiny_model, device="tpu")
