"""The models shipped in data/pretrained: every one loads by name with its checksum verified, is small, carries
the metadata of how it was trained, and does its job (the generators write the characters they are asked
for; the recognizer reads held-out real words)."""

import json
import re
import shutil

import numpy as np
import pytest
import torch

from handwriting import pretrained
from handwriting.generate import write

SHIPPED = {
    "graves-synthesis-bigbank": "SynthesisNetwork",
    "graves-prediction-bigbank": "PredictionNetwork",
    "cursive-transformer-bigbank": "CursiveTransformer",
    "mdn-transformer-bigbank": "MDNTransformer",
    "recognizer-bigbank": "Recognizer",
    "graves-synthesis-tiny": "SynthesisNetwork",
    "graves-prediction-tiny": "PredictionNetwork",
    "cursive-transformer-tiny": "CursiveTransformer",
    "mdn-transformer-tiny": "MDNTransformer",
}
GENERATORS = [n for n, c in SHIPPED.items() if c in ("SynthesisNetwork", "CursiveTransformer", "MDNTransformer")]


def test_every_shipped_model_is_listed():
    names = {m["name"] for m in pretrained.list_pretrained()}
    missing = set(SHIPPED) - names
    assert not missing, f"data/pretrained lacks {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_loads_verified_small_and_described(name):
    model = pretrained.load_pretrained(name)
    assert type(model).__name__ == SHIPPED[name]
    weights = pretrained.find_pretrained(name)
    assert weights.stat().st_size <= 20 * 2**20, "each shipped file must stay under 20 MB"
    meta = json.loads(weights.with_suffix(".json").read_text())
    training = meta["training"]
    for key in ("command", "steps", "wall_time_s", "hardware", "git_commit"):
        assert training.get(key) not in (None, ""), f"{name}: training.{key} missing"
    if "bigbank" in name:
        assert len(training["data_sha256"]) == 64, f"{name}: the checksum of the data it was trained on"
    assert np.isfinite(meta["metrics"]["nll_per_point"] if "nll_per_point" in meta["metrics"] else 0.0)
    assert "PLACEHOLDER" not in (meta.get("description") or ""), f"{name} is a placeholder, not the trained model"


def test_a_damaged_copy_is_refused(tmp_path, monkeypatch):
    src = pretrained.find_pretrained("graves-synthesis-tiny")
    shutil.copy(src.with_suffix(".json"), tmp_path / "broken.json")
    blob = bytearray(src.read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / "broken.safetensors").write_bytes(bytes(blob))
    monkeypatch.setenv("HANDWRITING_PRETRAINED", str(tmp_path))
    with pytest.raises(pretrained.PretrainedError, match="broken"):
        pretrained.load_pretrained("broken")


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_write_a_line_reproducibly(name):
    model = pretrained.load_pretrained(name)
    chars = model.alphabet if isinstance(model.alphabet, str) else model.alphabet.chars
    text = "".join(c for c in "handwriting" if c in chars)[:8]
    a = write(text, model=model, bias=1.0, seed=3)
    b = write(text, model=model, bias=1.0, seed=3)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert len(a.offsets) > len(text) and np.isfinite(a.offsets).all()


def test_publish_copies_byte_for_byte_and_renames(tmp_path):
    src = pretrained.find_pretrained("graves-prediction-tiny")
    out = pretrained.publish(src, "copy-of-tiny", description="a copy", directory=tmp_path)
    assert out.read_bytes() == src.read_bytes()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["weights"]["file"] == "copy-of-tiny.safetensors" and meta["description"] == "a copy"
    with pytest.raises(pretrained.PretrainedError, match="name"):
        pretrained.publish(src, "../escape", directory=tmp_path)


def test_graves_bigbank_model_follows_the_text(bigbank_path):
    """The synthesis network's window walks through the whole text: it stops after the last character and
    its φ peaks move forward through the characters."""
    model = pretrained.load_pretrained("graves-synthesis-bigbank")
    w = write("minimum", model=model, bias=2.0, seed=0, return_internals=True)
    phi = np.asarray(w.internals[0]["phi"])  # (T, U)
    peaks = phi.argmax(1)
    assert peaks[-1] >= phi.shape[1] - 2, "the window should reach the end of the text"
    assert np.all(np.diff(np.maximum.accumulate(peaks)) >= 0) and peaks[: len(peaks) // 4].mean() < peaks[-len(peaks) // 4 :].mean()


@pytest.mark.parametrize("dtype", ["bf16"])
def test_half_precision_storage_matches_fp32(tmp_path, dtype):
    from handwriting import checkpoint as ckpt

    model = pretrained.load_pretrained("graves-synthesis-tiny")
    ckpt.save_model(tmp_path / "half", model, dtype=dtype)
    half, _ = ckpt.load_model(tmp_path / "half")
    x = torch.randn(2, 40, 3)
    x[..., 2] = 0
    text = torch.randint(1, model.config.alphabet_size, (2, 6))
    with torch.no_grad():
        a = model(x, text).params.mu
        b = half(x, text).params.mu
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.05)


def test_short_aliases_name_the_bigbank_models():
    assert pretrained.find_pretrained("graves").stem == "graves-synthesis-bigbank"
    assert pretrained.find_pretrained("transformer").stem == "cursive-transformer-bigbank"
    assert pretrained.load_pretrained("recognizer").pretrained_name == "recognizer-bigbank"


# ----------------------------------------------------------------------------------------------------------
# `handwriting models` with broken files around: one bad model never hides the others


def _models_args(**kw):
    import argparse

    return argparse.Namespace(**{"json": False, "verify": False, "publish": None, "description": None, **kw})


@pytest.fixture
def broken_dir(tmp_path, monkeypatch):
    """A pretrained directory (the only one) with one good model and one of each kind of broken one."""
    src = pretrained.find_pretrained("graves-prediction-tiny")
    weights, meta = src.read_bytes(), json.loads(src.with_suffix(".json").read_text())
    d = tmp_path / "models"
    d.mkdir()

    def put(name, description, with_weights=True):
        if description is not None:
            (d / f"{name}.json").write_text(description if isinstance(description, str) else json.dumps(description))
        if with_weights:
            (d / f"{name}.safetensors").write_bytes(weights)

    put("good", meta)
    put("a-list", [meta])
    put("garbage", "{not json")
    bad = json.loads(json.dumps(meta))
    bad["model"]["config"]["hidden"] = "abc"
    put("hidden-abc", bad)
    put("no-description", None)
    put("no-weights", meta, with_weights=False)
    put("notes", {"some": "other file"}, with_weights=False)  # not a model: not listed at all
    monkeypatch.setenv("HANDWRITING_PRETRAINED", str(d))
    monkeypatch.setattr(pretrained, "REPO_DIR", tmp_path / "none")
    return d


BROKEN = {"a-list": "the top level is", "garbage": "not a readable JSON", "hidden-abc": r'model\.config\.hidden is "abc"',
          "no-description": "no-description.json: missing", "no-weights": "no-weights.safetensors: missing"}


def test_listing_survives_broken_files(broken_dir):
    assert [m["name"] for m in pretrained.list_pretrained()] == ["good"]  # every entry returned is usable
    listed = {m["name"]: m for m in pretrained.list_pretrained(include_broken=True)}
    assert set(listed) == {"good", *BROKEN}
    assert listed["good"]["error"] is None and listed["good"]["class"] == "PredictionNetwork"
    for name, message in BROKEN.items():
        assert re.search(message, listed[name]["error"]) and "\n" not in listed[name]["error"], name


def test_models_command_lists_the_good_and_reports_the_broken(broken_dir, capsys):
    assert pretrained.run(_models_args()) == 0  # a plain listing only reports
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("good ") and "PredictionNetwork" in line for line in out)
    for name, message in BROKEN.items():
        assert any(line.startswith(f"{name}  (DAMAGED)") for line in out), name
        assert sum(1 for line in out if line.startswith(f"{name}: ") and re.search(message, line)) == 1, name
    assert pretrained.run(_models_args(verify=True)) == 1  # --verify: a broken model is a failure
    capsys.readouterr()
    assert pretrained.run(_models_args(verify=True, json=True)) == 1
    verified = {m["name"]: m["verified"] for m in json.loads(capsys.readouterr().out)}
    assert verified == {"good": True, **{n: False for n in BROKEN}}


def test_models_verify_passes_when_all_are_good(broken_dir, capsys):
    for p in broken_dir.iterdir():
        if p.stem != "good":
            p.unlink()
    assert pretrained.run(_models_args(verify=True)) == 0
    assert "good" in capsys.readouterr().out


def test_publish_records_a_relative_path_and_writes_a_pair(tmp_path, monkeypatch):
    import errno
    import os

    src = pretrained.find_pretrained("graves-prediction-tiny").resolve()  # an absolute path
    monkeypatch.chdir(tmp_path)
    meta = json.loads(pretrained.publish(src, "copy", directory=tmp_path / "a").with_suffix(".json").read_text())
    assert meta["published_from"] == src.name  # not this machine's folders
    calls = []

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == 2:  # the description
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        pretrained.publish(src, "copy", directory=tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []  # neither file, no temporaries
