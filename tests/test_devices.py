"""The shipped models and the trainer on every device this machine has: CPU always, CUDA when a GPU is present
(those cases skip without one). On a GPU machine run ``pytest tests/test_devices.py`` and say so in the note.

Each model is checked against itself on the CPU: the same inputs must give the same outputs (to float
rounding of the device's kernels), so a device path that computes something else fails here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from handwriting import pretrained
from handwriting.generate import write

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]),
]
WRITERS = ["graves-synthesis-bigbank", "cursive-transformer-bigbank", "mdn-transformer-bigbank"]


def _tensors(out) -> list[torch.Tensor]:
    """Every tensor in a model's output (a tensor, a dataclass of tensors, or tuples of those), flattened."""
    if isinstance(out, torch.Tensor):
        return [out]
    if dataclasses.is_dataclass(out):
        return [t for f in dataclasses.fields(out) for t in _tensors(getattr(out, f.name))]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def _teacher_forced(model, device: str):
    """The model's outputs over one fixed input (a real-looking line of offsets or tokens and its text)."""
    g = torch.Generator().manual_seed(0)
    text = "minimum"
    ids = torch.tensor([model.alphabet.encode(text)], device=device)
    if hasattr(model, "tokenizer") and model.tokenizer is not None and hasattr(model, "tok_emb"):
        tokens = torch.randint(4, model.config.vocab_size, (1, 120), generator=g).to(device)
        return model(tokens, ids)
    x = torch.randn(1, 150, 3, generator=g) * 0.3
    x[..., 2] = (torch.rand(1, 150, generator=g) < 0.1).float()
    x = x.to(device)
    if hasattr(model, "tok_emb") or type(model).__name__ == "MDNTransformer":
        return model(x, ids)
    return model(x, ids, internals=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", WRITERS)
def test_pretrained_models_compute_the_same_function_and_write_on_the_device(name, device):
    cpu = pretrained.load_pretrained(name)
    dev = pretrained.load_pretrained(name, device=device)
    assert next(dev.parameters()).device.type == device
    with torch.no_grad():
        ref, got = _tensors(_teacher_forced(cpu, "cpu")), _tensors(_teacher_forced(dev, device))
    assert ref and len(ref) == len(got)
    for a, b in zip(ref, got):
        torch.testing.assert_close(b.float().cpu(), a.float(), rtol=1e-3, atol=1e-3)
    w = write("minimum", model=dev, bias=1.0, seed=0)
    again = write("minimum", model=dev, bias=1.0, seed=0)
    assert len(w.offsets) > 5 and np.isfinite(w.offsets).all()  # (the MDN transformer often stops early)
    assert np.array_equal(w.offsets, again.offsets)  # the same seed, the same handwriting, on this device too


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind,amp", [("graves", "none"), ("transformer", "none"), ("transformer", "bf16"),
                                      ("mdn-transformer", "none")])
def test_the_trainer_runs_on_the_device(tmp_path, kind, amp, device):
    from handwriting import checkpoint as ckpt
    from handwriting.cli import main

    if amp == "bf16" and device == "cpu":
        pytest.skip("bf16 autocast on this CPU is emulated (tested in test_train); the GPU case is what matters here")
    args = ["train", kind, "--data", "synthetic", "--size", "tiny", "--synthetic", "16", "--batch-size", "4",
            "--steps", "3", "--no-progress", "--sample-every", "100", "--device", device, "--amp", amp,
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    model, meta = ckpt.load_model(tmp_path / "run" / "final")
    assert meta["training"]["hardware"]["device"].startswith(device)
    assert all(torch.isfinite(p).all() for p in model.parameters())
