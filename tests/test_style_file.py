"""Style files: fit_style on a constructed writer moves the model toward it (held-out NLL), only the tuned
tensors change, the file round-trips bit for bit, write(style=...) and the CLI use it, and every bad file
(truncated, damaged, foreign, another base, tensors that do not fit) is a StyleError that says so.  The
pretrained ``graves-synthesis-tiny`` (1×32 LSTM) stands in for the shipped network: a few steps, seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handwriting.cli import main
from handwriting.datasets.jsonink import save_samples
from handwriting.datasets.synthetic import synthesize
from handwriting.datasets.torch_data import StitchedLines, StrokeDataset, collate
from handwriting.errors import DataError
from handwriting.evaluate import style_features
from handwriting.generate import resolve_model, write
from handwriting.pretrained import load_pretrained
from handwriting.strokes import Sample
from handwriting.style_file import StyleError, StyleFile, apply_style, load_style, read_style, save_style
from handwriting.style_fit import fit_style, prepare_samples

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "graves-synthesis-tiny"
TRAIN = ["on", "we", "am", "so", "in", "an", "us", "me", "no", "it", "up", "at"]
HELD = ["go", "is", "my", "he", "to", "be"]


def backhand(texts, seed=0):
    """The constructed writer: the synthetic 'backhand' writer (slant about -0.3), sheared further left."""
    out = []
    for s in synthesize(texts, writer="backhand", seed=seed):
        off = s.offsets.copy()
        off[:, 0] -= 0.4 * off[:, 1]
        out.append(Sample(off, text=s.text, writer="lefty"))
    return out


def held_out_nll(model, samples) -> float:
    prepared = prepare_samples(samples, model)
    ds = StrokeDataset(StitchedLines(prepared, 1, num_lines=len(prepared) * 2, seed=5), model.alphabet,
                       normalizer=model.normalizer)
    with torch.no_grad():
        out = model.eval().training_step(collate([ds[i] for i in range(len(ds))]))
    return out["nll_sum"] / out["points"]


@pytest.fixture(scope="module")
def fitted():
    """A style fitted for 40 steps on 12 two-letter words of the constructed writer (all of them: early
    stopping on held-out samples has its own test)."""
    torch.set_num_threads(1)
    seen = []
    style = fit_style(backhand(TRAIN), model=TINY, steps=40, minutes=None, lr=1e-2, batch_size=8, warmup=5,
                      valid_fraction=0, progress=lambda p: seen.append(p["step"]))
    assert seen == list(range(1, 41))
    return style


@pytest.fixture
def saved(fitted, tmp_path):
    return fitted.save(tmp_path / "mine.style")


# ----------------------------------------------------------------------------------------------------------
# fitting


def test_fit_moves_toward_the_writer_and_tunes_only_its_tensors(fitted):
    base = resolve_model(TINY)
    styled = apply_style(fitted, base)
    before, after = held_out_nll(base, backhand(HELD, seed=1)), held_out_nll(styled, backhand(HELD, seed=1))
    assert after < before - 0.1, (before, after)  # held-out words of the writer: more likely under the style
    tuned = set(fitted.tensors)
    assert tuned == {"head.linear.weight", "head.linear.bias", "window.weight", "window.bias",
                     "lstms.0.bias_ih_l0", "lstms.0.bias_hh_l0"}
    b, s = base.state_dict(), styled.state_dict()
    for k in b:
        assert torch.equal(b[k], s[k]) == (k not in tuned), k  # the tuned tensors changed, nothing else did
    # and it writes new text in the writer's slant
    ref = np.mean([style_features(s)["slant"] for s in backhand(HELD, seed=1)])
    texts = ["so we go", "my home", "up in it", "no one"]
    slant = lambda **kw: np.mean([style_features(write(t, seed=i, **kw))["slant"] for i, t in enumerate(texts)])  # noqa: E731
    unstyled, styled_slant = slant(model=TINY), slant(style=fitted)
    assert abs(styled_slant - ref) < 0.5 * abs(unstyled - ref), (unstyled, styled_slant, ref)
    meta = fitted.meta
    assert meta["data"]["samples"] == meta["data"]["words"] == len(TRAIN) and meta["data"]["writers"] == ["lefty"]
    assert meta["training"]["steps"] == 40 and meta["base"]["name"] == TINY
    assert meta["base"]["sha256"] == base.meta["weights"]["sha256"]
    assert meta["training"]["nll_per_point_last"] < meta["training"]["nll_per_point_first"]


def test_fit_never_changes_the_cached_base(fitted):
    base = resolve_model(TINY)
    assert all(p.requires_grad for p in base.parameters())  # not frozen either
    fresh = load_pretrained(TINY)  # a fresh copy from the files
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, base.state_dict()[k]), k


def test_fit_style_is_importable_from_style_file_and_refuses_a_styled_base(fitted):
    from handwriting import style_file

    assert style_file.fit_style is fit_style
    with pytest.raises(StyleError, match="already has a style applied; fit on its base model"):
        fit_style(backhand(TRAIN[:2]), model=apply_style(fitted, resolve_model(TINY)), steps=1)


def test_same_seed_and_steps_same_style():
    a = fit_style(backhand(TRAIN[:4]), model=TINY, steps=3, minutes=None, batch_size=4)
    b = fit_style(backhand(TRAIN[:4]), model=TINY, steps=3, minutes=None, batch_size=4)
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_early_stopping_keeps_the_best_held_out_step():
    kw = dict(model=TINY, minutes=None, batch_size=4, lr=1e-2, warmup=0, eval_every=1)
    style = fit_style(backhand(TRAIN), steps=100, patience=1, **kw)
    tr, v = style.meta["training"], style.meta["validation"]
    assert tr["stopped_by"] == "patience" and tr["steps"] == tr["kept_step"] + 1 < 100
    assert v["samples"] == 2 and len(v["curve"]) == tr["steps"] + 1 and v["curve"][0][0] == 0
    assert v["nll_per_point_kept"] == min(c[1] for c in v["curve"]) < v["nll_per_point_base"]
    again = fit_style(backhand(TRAIN), steps=tr["kept_step"], patience=None, **kw)  # the same run, stopped there
    assert all(torch.equal(style.tensors[k], again.tensors[k]) for k in style.tensors)


def test_time_budget_stops_the_fit():
    style = fit_style(backhand(TRAIN[:4]), model=TINY, minutes=0.04, batch_size=4)
    tr = style.meta["training"]
    assert tr["steps"] >= 1 and tr["max_steps"] is None and tr["wall_time_s"] <= 0.04 * 60 + 1.0


def test_bad_samples_name_the_sample_and_the_character():
    good = backhand(["ab"])[0]
    with pytest.raises(DataError, match=r"sample 1 \('a\\tb'\): character '\\t' at position 1"):
        fit_style([good, Sample(good.offsets, text="a\tb")], model=TINY, steps=1)
    with pytest.raises(DataError, match="sample 0 .* has no text"):
        fit_style([Sample(good.offsets, text=" ")], model=TINY, steps=1)
    with pytest.raises(DataError, match="no samples"):
        fit_style([], model=TINY, steps=1)
    with pytest.raises(DataError, match="minutes .* or steps"):
        fit_style([good], model=TINY, steps=None, minutes=None)


# ----------------------------------------------------------------------------------------------------------
# the file


def test_round_trip_same_tensors_same_writing(fitted, saved):
    back = read_style(saved)
    assert set(back.tensors) == set(fitted.tensors)
    assert all(torch.equal(back.tensors[k], fitted.tensors[k]) for k in fitted.tensors)
    assert back.meta == fitted.meta and back.meta["format"] == "handwriting.style"
    assert saved.stat().st_size < 20_000  # the tuned tensors only (the tiny base is 66 KB)
    a = write("so we go", style=saved, seed=4)
    b = write("so we go", style=back, seed=4)
    c = write("so we go", model=load_style(saved), seed=4)
    d = write("so we go", model=TINY, seed=4)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.offsets, c.offsets)
    assert not np.array_equal(a.offsets, d.offsets)  # the style is used
    assert write("so we go", model="graves-synthesis-tiny", style=saved, seed=4).offsets.tobytes() == a.offsets.tobytes()
    assert "mine" in a.writer
    half = load_style(saved, strength=0.5).state_dict()
    full, base = load_style(saved).state_dict(), resolve_model(TINY).state_dict()
    assert torch.allclose(half["head.linear.bias"], (full["head.linear.bias"] + base["head.linear.bias"]) / 2)
    assert torch.equal(load_style(saved, strength=0).state_dict()["window.weight"], base["window.weight"])
    with pytest.raises(StyleError, match="strength must be a number from 0"):
        load_style(saved, strength=1.5)
    assert "head.linear.weight" in back.summary() and "12 samples" in back.summary()


def test_truncated_and_damaged_files(saved, tmp_path):
    blob = saved.read_bytes()
    cut = tmp_path / "cut.style"
    for n in (len(blob) // 2, 40, 5, 0):
        cut.write_bytes(blob[:n])
        with pytest.raises(StyleError, match="cut.style: (damaged or truncated|not a style file)"):
            read_style(cut)
    flipped = bytearray(blob)
    flipped[-10] ^= 0xFF  # a byte of a tensor
    bad = tmp_path / "bad.style"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(StyleError, match="bad.style: damaged .*SHA-256"):
        read_style(bad)
    with pytest.raises(StyleError, match="bad.style: damaged"):
        write("ab", style=bad, seed=0)
    with pytest.raises(StyleError, match="no such style file"):
        read_style(tmp_path / "none.style")


def test_foreign_files_are_not_styles(tmp_path):
    from handwriting.pretrained import find_pretrained

    with pytest.raises(StyleError, match="not a handwriting style file .*format 'handwriting.model'"):
        read_style(find_pretrained(TINY))
    samples = tmp_path / "samples.json"
    save_samples(samples, backhand(["ab"]))
    with pytest.raises(StyleError, match="samples.json: not a style file"):
        read_style(samples)


def test_another_base_is_refused(fitted, saved, tmp_path):
    other = resolve_model(TINY)
    changed = apply_style(StyleFile({"head.linear.bias": other.head.linear.bias.detach() + 1}, fitted.meta), other)
    del changed.meta["weights"]  # a model in memory: compared by its tensors' SHA-256
    with pytest.raises(StyleError, match="mine.style was fitted to the base model 'graves-synthesis-tiny'"):
        apply_style(read_style(saved), changed)
    with pytest.raises(StyleError, match="fitted to the base model 'graves-synthesis-tiny'.*'graves-synthesis-bigbank'"):
        write("ab", model="graves-synthesis-bigbank", style=saved, seed=0)
    meta = json.loads(json.dumps(fitted.meta))
    meta["base"]["sha256"] = "0" * 64
    wrong = save_style(tmp_path / "wrong.style", StyleFile(dict(fitted.tensors), meta))
    with pytest.raises(StyleError, match="wrong.style was fitted to .*sha256 000000000000"):
        load_style(wrong)


def test_tensors_that_do_not_fit(fitted, tmp_path):
    tensors = dict(fitted.tensors)
    tensors["window.bias"] = torch.zeros(5)
    shape = save_style(tmp_path / "shape.style", StyleFile(tensors, json.loads(json.dumps(fitted.meta))))
    with pytest.raises(StyleError, match="shape.style: tensor 'window.bias' has shape \\[5\\] but the model's is \\[9\\]"):
        load_style(shape)
    tensors = {"lstms.7.bias_ih_l0": torch.zeros(3)}
    name = save_style(tmp_path / "name.style", StyleFile(tensors, json.loads(json.dumps(fitted.meta))))
    with pytest.raises(StyleError, match="'lstms.7.bias_ih_l0' is not a parameter of SynthesisNetwork"):
        write("ab", style=name, seed=0)


def test_newer_format_is_refused(fitted, tmp_path):
    from safetensors.torch import save as st_save

    from handwriting.style_file import _tensors_digest

    meta = dict(json.loads(json.dumps(fitted.meta)), format_version=99)
    body = json.dumps(meta)
    tensors = {k: v.contiguous() for k, v in fitted.tensors.items()}
    p = tmp_path / "new.style"
    p.write_bytes(st_save(tensors, metadata={"handwriting": body, "sha256": _tensors_digest(tensors, body)}))
    with pytest.raises(StyleError, match="newer version of handwriting .*format_version 99"):
        read_style(p)


# ----------------------------------------------------------------------------------------------------------
# the command


def test_style_commands(tmp_path, capsys):
    samples = tmp_path / "mine.json"
    save_samples(samples, backhand(TRAIN[:4]))
    out = tmp_path / "mine.style"
    args = ["style", "fit", str(samples), "-o", str(out), "--model", TINY, "--steps", "2", "--batch-size", "4"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "step     1" in text and f"wrote {out}" in text and "2 steps in" in text
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main(["style", "show", str(out)]) == 0
    assert "base model   graves-synthesis-tiny" in capsys.readouterr().out
    svg = tmp_path / "w.svg"
    assert main(["write", "so we", "--style", str(out), "-o", str(svg), "--seed", "1"]) == 0
    assert svg.is_file()
    assert main(["write", "so", "--style", str(tmp_path / "gone.style"), "-o", str(svg)]) == 2
    assert "no such style file" in capsys.readouterr().err


def test_a_style_fitted_on_a_checkpoint_works_from_any_folder_and_names_a_moved_base(tmp_path, monkeypatch, capsys):
    import shutil

    from handwriting import checkpoint as ckpt

    (tmp_path / "runs").mkdir()
    ckpt.save_model(tmp_path / "runs" / "base", resolve_model(TINY))
    samples = tmp_path / "mine.json"
    save_samples(samples, backhand(TRAIN[:4]))
    monkeypatch.chdir(tmp_path)
    assert main(["style", "fit", "mine.json", "-o", "mine.style", "--model", "runs/base", "--steps", "1",
                 "--batch-size", "2"]) == 0
    assert read_style(tmp_path / "mine.style").base_name == str(tmp_path / "runs" / "base")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["write", "so", "--style", "../mine.style", "-o", "w.svg", "--seed", "1"]) == 0
    shutil.move(tmp_path / "runs", tmp_path / "moved")
    ckpt.LOADED.clear()
    with pytest.raises(StyleError, match=r"mine.style: its base model .*runs/base' cannot be loaded .*--model PATH"):
        write("so", style="../mine.style", seed=1)
    assert main(["write", "so", "--style", "../mine.style", "--model", "../moved/base", "-o", "w.svg"]) == 0


def test_style_fit_refuses_a_bad_output_or_budget_before_fitting(tmp_path, capsys):
    samples = tmp_path / "mine.json"
    save_samples(samples, backhand(TRAIN[:4]))
    (tmp_path / "dir.style").mkdir()
    for out, err in ((samples / "x.style", "is a file, not a directory"), (tmp_path / "dir.style", "it is a directory")):
        assert main(["style", "fit", str(samples), "-o", str(out), "--model", TINY, "--steps", "1", "--overwrite"]) == 2
        got = capsys.readouterr()
        assert err in got.err and "fitting a style" not in got.out  # refused before any work
    assert main(["style", "fit", str(samples), "-o", str(tmp_path / "a.style"), "--minutes", "0"]) == 2
    assert "--minutes 0 (no time limit) needs --steps N" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    save_samples(bad, [Sample(backhand(["so"])[0].offsets, text="s\u00f6")])
    assert main(["style", "fit", str(bad), "-o", str(tmp_path / "b.style"), "--model", TINY, "--steps", "1"]) == 2
    assert f"{bad}: fit_style: sample 0" in capsys.readouterr().err


def test_write_style_names_a_synthetic_writer_a_samples_file_or_a_style_file(tmp_path, capsys):
    svg = tmp_path / "w.svg"
    assert main(["write", "so", "--style", "print", "--model", TINY, "-o", str(svg), "--seed", "1"]) == 0
    samples = tmp_path / "mine.json"
    save_samples(samples, backhand(TRAIN[:2]))
    assert main(["write", "so", "--style", str(samples), "-o", str(svg)]) == 2
    assert f"is a samples file, not a style file; prime with it (--prime {samples})" in capsys.readouterr().err
    assert main(["write", "so", "--style", "nobody", "-o", str(svg)]) == 2
    err = capsys.readouterr().err
    assert "no style named 'nobody'" in err and "neat, hasty" in err and "--prime FILE" in err


def test_style_fit_defaults_to_the_many_hands_network_and_writes_with_it(tmp_path, capsys):
    """Without --model a style is fitted to graves-synthesis-hands (its style files read back better on real
    held-out hands than the one-hand writer's); `write --style` then loads that base although the default
    writer is another network."""
    from handwriting.pretrained import DEFAULT_MODEL
    from handwriting.style_fit import DEFAULT_BASE

    assert DEFAULT_BASE == "graves-synthesis-hands" != DEFAULT_MODEL
    samples = tmp_path / "mine.json"
    save_samples(samples, backhand(TRAIN[:4]))
    out = tmp_path / "mine.style"
    assert main(["style", "fit", str(samples), "-o", str(out), "--steps", "1", "--batch-size", "2"]) == 0
    assert f"on {DEFAULT_BASE}" in capsys.readouterr().out
    assert read_style(out).base_name == DEFAULT_BASE
    svg = tmp_path / "w.svg"
    assert main(["write", "so", "--style", str(out), "-o", str(svg), "--seed", "1"]) == 0 and svg.is_file()


def test_the_panel_offers_style_files_as_models(saved, tmp_path):
    """A style file joins the panel's model picker (as base+name), from the constructor or the samples box; the
    panel then writes what write(style=...) writes, and a bad file is an error in the status line."""
    from handwriting.widgets import Panel

    p = Panel(model=TINY, style_files=saved, background=False, autostart=False, text="so we go", seed=4)
    label = f"{TINY}+mine"
    assert p.model.options == (TINY, label) and p.model.value == TINY
    p.model.value = label
    got = p.regenerate().lines[0]
    want = write("so we go", model=TINY, style=saved, seed=4, bias=p.bias.value).lines[0]
    np.testing.assert_array_equal(got.offsets, want.offsets)
    q = Panel(model=TINY, background=False, autostart=False)
    q.samples_path.value = str(saved)
    q.load_button.click()
    assert q.model.value == label and "model picker" in q.status.value
    bad = tmp_path / "bad.style"
    bad.write_bytes(b"not a style")
    q.samples_path.value = str(bad)
    q.load_button.click()
    assert q.status.value.startswith("error:") and "bad.style" in q.status.value and q.model.value == label
