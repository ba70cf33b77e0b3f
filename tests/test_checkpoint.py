"""Checkpoints without pickle: round trips, checksums, half-precision storage, optimizer and RNG state."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

from handwriting import checkpoint as ckpt
from handwriting.strokes import Normalizer


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny models, and a shared machine where spinning OpenMP threads slow things down."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@dataclass
class NetConfig:
    width: int = 16
    layers: int = 2
    sizes: tuple[int, int] = (3, 4)
    names: tuple[str, ...] = ("a", "b")
    scale: float = 1.0
    note: str | None = None


class Net(nn.Module):
    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = config or NetConfig()
        c = self.config
        self.rnn = nn.LSTM(3, c.width, num_layers=c.layers, batch_first=True)
        self.out = nn.Linear(c.width, 7)
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        return self.out(self.rnn(x)[0])


@dataclass
class TiedConfig:
    n: int = 5


class Tied(nn.Module):
    def __init__(self, config: TiedConfig | None = None):
        super().__init__()
        self.config = config or TiedConfig()
        self.emb = nn.Embedding(self.config.n, 4)
        self.dec = nn.Linear(4, self.config.n, bias=False)
        self.dec.weight = self.emb.weight


ckpt.register_model(Net)
ckpt.register_model(Tied)


def make_net(**kw) -> Net:
    torch.manual_seed(0)
    net = Net(NetConfig(**kw))
    net.steps.fill_(42)
    return net


def test_round_trip_weights_config_and_description(tmp_path):
    net = make_net(width=12, sizes=(5, 6), note="hi")
    norm = Normalizer(mean=(0.1, -0.2), std=(2.0, 3.0))
    path = ckpt.save_model(
        tmp_path / "m",
        net,
        {"alphabet": " abc", "normalizer": norm, "training": {"command": "handwriting train x"}, "metrics": {"nll": 1.5}},
    )
    assert path == tmp_path / "m.safetensors" and (tmp_path / "m.json").is_file()
    model, meta = ckpt.load_model(tmp_path / "m")
    assert isinstance(model, Net) and not model.training
    assert model.config == net.config and isinstance(model.config.sizes, tuple)
    for (k, a), (k2, b) in zip(net.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert model.normalizer == norm
    chars = getattr(model.alphabet, "chars", model.alphabet)
    assert "".join(chars) == " abc"
    assert meta["training"]["command"] == "handwriting train x" and meta["metrics"] == {"nll": 1.5}
    assert meta["weights"]["sha256"] == ckpt.sha256_file(path)
    assert meta["model"]["class"] == "Net" and meta["model"]["parameters"] == sum(p.numel() for p in net.parameters())
    # every path form works
    for p in (tmp_path / "m.safetensors", tmp_path / "m.json", str(tmp_path / "m")):
        assert ckpt.load_model(p)[1]["weights"] == meta["weights"]


def test_no_pickle_in_files(tmp_path):
    ckpt.save_model(tmp_path / "m", make_net())
    blob = (tmp_path / "m.safetensors").read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    assert json.loads(header["__metadata__"]["handwriting"])["model"]["class"] == "Net"
    assert b"\x80\x02" not in blob[:2] and not blob.startswith(b"PK")  # neither a pickle nor a torch zip


def test_tied_weights(tmp_path):
    m = Tied()
    ckpt.save_model(tmp_path / "t", m)
    m2, _ = ckpt.load_model(tmp_path / "t")
    assert torch.equal(m2.emb.weight, m.emb.weight) and m2.dec.weight is m2.emb.weight


def test_corrupt_weights_refused(tmp_path):
    ckpt.save_model(tmp_path / "m", make_net())
    w = tmp_path / "m.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-5] ^= 0xFF  # flip bits inside a weight
    w.write_bytes(bytes(blob))
    with pytest.raises(ckpt.CheckpointError, match=r"m\.safetensors: SHA-256 .* does not match m\.json"):
        ckpt.load_model(tmp_path / "m")
    model, _ = ckpt.load_model(tmp_path / "m", verify=False)  # loads, but the weights are not the saved ones
    w.write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="not a valid safetensors file"):
        ckpt.load_model(tmp_path / "m", verify=False)


def test_mismatched_sidecar_refused(tmp_path):
    ckpt.save_model(tmp_path / "a", make_net())
    ckpt.save_model(tmp_path / "b", make_net(width=8))
    (tmp_path / "a.json").write_text((tmp_path / "b.json").read_text())
    with pytest.raises(ckpt.CheckpointError, match="does not match"):
        ckpt.load_model(tmp_path / "a")


def test_missing_sidecar_needs_verify_false(tmp_path):
    net = make_net()
    ckpt.save_model(tmp_path / "m", net)
    (tmp_path / "m.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="cannot be verified"):
        ckpt.load_model(tmp_path / "m")
    model, meta = ckpt.load_model(tmp_path / "m", verify=False)
    assert model.config == net.config and "weights" not in meta


def test_missing_and_unknown(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no such weights file"):
        ckpt.load_model(tmp_path / "nothing")
    ckpt.save_model(tmp_path / "m", make_net())
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["model"]["class"] = "NoSuchNet"
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match="unknown model class 'NoSuchNet'"):
        ckpt.load_model(tmp_path / "m")
    meta["model"]["class"] = "Net"
    meta["model"]["config"]["future_field"] = 1
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match="future_field"):
        ckpt.load_model(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="not a readable JSON"):
        ckpt.load_model(tmp_path / "m")


@pytest.mark.parametrize("dtype,tol", [("bf16", 3e-2), ("fp16", 3e-3)])
def test_half_precision_storage(tmp_path, dtype, tol):
    net = make_net(width=64)
    ckpt.save_model(tmp_path / "full", net)
    ckpt.save_model(tmp_path / "half", net, dtype=dtype)
    full, half = (tmp_path / "full.safetensors").stat().st_size, (tmp_path / "half.safetensors").stat().st_size
    assert half < 0.55 * full
    m, meta = ckpt.load_model(tmp_path / "half")
    assert meta["weights"]["dtype"] == {"bf16": "bfloat16", "fp16": "float16"}[dtype]
    assert all(p.dtype == torch.float32 for p in m.parameters()) and m.steps.item() == 42
    x = torch.randn(2, 30, 3)
    with torch.no_grad():
        ref, out = net.eval()(x), m(x)
    assert (out - ref).abs().max().item() < tol * ref.abs().max().item()


def test_optimizer_state_round_trip():
    net = make_net()
    for opt_cls, kw in [(torch.optim.Adam, {"betas": (0.8, 0.9)}), (torch.optim.RMSprop, {"momentum": 0.9, "centered": True})]:
        opt = opt_cls(net.parameters(), lr=1e-3, **kw)
        for _ in range(2):
            net(torch.randn(2, 4, 3)).sum().backward()
            opt.step()
        tensors, rest = ckpt.flatten_optimizer_state(opt.state_dict())
        json.dumps(rest)
        opt2 = opt_cls(net.parameters(), lr=5.0)
        opt2.load_state_dict(ckpt.unflatten_optimizer_state(tensors, json.loads(json.dumps(rest))))
        a, b = opt.state_dict(), opt2.state_dict()
        assert a["param_groups"] == b["param_groups"]
        for pid in a["state"]:
            for key, v in a["state"][pid].items():
                assert torch.equal(v, b["state"][pid][key])


def test_rng_state_round_trip():
    tensors, rest = ckpt.rng_state()
    expect = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(5), random.seed(9)
    ckpt.set_rng_state(tensors, json.loads(json.dumps(rest)))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]


def test_training_state_file(tmp_path):
    t = {"a": torch.arange(5.0), "b": torch.zeros(2, 2, dtype=torch.uint8)}
    p = ckpt.save_training_state(tmp_path / "state", t, {"step": 3, "nested": {"x": [1, 2]}})
    tensors, meta = ckpt.load_training_state(tmp_path)
    assert torch.equal(tensors["a"], t["a"]) and meta["step"] == 3 and meta["nested"] == {"x": [1, 2]}
    assert p.name == "state.safetensors" and not list(tmp_path.glob("*.part"))
    m = Tied()  # tied weights share storage: still saved (as two tensors)
    ckpt.save_training_state(tmp_path / "tied", {f"model.{k}": v for k, v in m.state_dict().items()}, {})
    assert torch.equal(ckpt.load_training_state(tmp_path / "tied.safetensors")[0]["model.dec.weight"], m.emb.weight)
    ckpt.save_model(tmp_path / "m", make_net())
    with pytest.raises(ckpt.CheckpointError, match="not a handwriting training state"):
        ckpt.load_training_state(tmp_path / "m.safetensors")


def test_failed_save_leaves_old_file(tmp_path, monkeypatch):
    ckpt.save_model(tmp_path / "m", make_net())
    before = (tmp_path / "m.safetensors").read_bytes()

    class Boom(Exception):
        pass

    def boom(*a, **k):
        raise Boom

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(Boom):
        ckpt.save_model(tmp_path / "m", make_net(width=4))
    assert not list(tmp_path.glob("*.part"))
    # the new weights went in, the description did not: the pair no longer matches and loading says so
    assert (tmp_path / "m.safetensors").read_bytes() != before
    monkeypatch.undo()
    with pytest.raises(ckpt.CheckpointError, match="does not match"):
        ckpt.load_model(tmp_path / "m")


def test_provenance_helpers():
    hw = ckpt.hardware_info("cpu")
    assert hw["torch"] == torch.__version__ and hw["device"] == "cpu"
    commit = ckpt.git_commit()
    assert commit is None or len(commit.split("-")[0]) == 40
