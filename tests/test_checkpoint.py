"""Checkpoints without pickle: round trips, checksums, half-precision storage, optimizer and RNG state."""

from __future__ import annotations

import errno
import json
import random
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from handwriting import checkpoint as ckpt
from handwriting.strokes import Normalizer


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: exact numbers, no OpenMP spinning


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


def _fail_nth(n: int, real, exc: OSError):
    """A stand-in for an os function whose ``n``-th call raises ``exc`` (a full disk, a failing rename)."""
    calls = []

    def fake(*a, **k):
        calls.append(a)
        if len(calls) == n:
            raise exc
        return real(*a, **k)

    return fake


@pytest.mark.parametrize("failing", [1, 2], ids=["weights-write", "json-write"])
def test_full_disk_leaves_the_old_pair(tmp_path, monkeypatch, failing):
    """The disk fills up while the weights (1st fsync) or the description (2nd) is written: neither file
    is replaced, no temporary file is left behind, and the old pair still loads."""
    ckpt.save_model(tmp_path / "m", make_net())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(ckpt.os, "fsync", _fail_nth(failing, ckpt.os.fsync, OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError, match=r"No space left on device.*previous m\.safetensors and m\.json are unchanged"):
        ckpt.save_model(tmp_path / "m", make_net(width=4))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the pair, and nothing else
    assert ckpt.load_model(tmp_path / "m")[0].config.width == 16


def test_failed_second_rename_is_detected_on_load(tmp_path, monkeypatch):
    """Only a failure between the two renames can split the pair; save says so, and so does load."""
    ckpt.save_model(tmp_path / "m", make_net())
    monkeypatch.setattr(ckpt.os, "replace", _fail_nth(2, ckpt.os.replace, OSError(errno.EIO, "Input/output error")))
    with pytest.raises(OSError, match=r"m\.json: cannot be replaced .*m\.safetensors replaced but m\.json not"):
        ckpt.save_model(tmp_path / "m", make_net(width=4))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temporaries
    with pytest.raises(ckpt.CheckpointError, match=r"SHA-256 .* does not match m\.json.*interrupted"):
        ckpt.load_model(tmp_path / "m")


# ----------------------------------------------------------------------------------------------------------
# a damaged or hand-edited description: a named error before anything is allocated


def _graves(tmp_path):
    from handwriting.models.graves import GravesConfig, SynthesisNetwork

    torch.manual_seed(0)
    cfg = GravesConfig(alphabet_size=4, hidden=8, layers=1, mixtures=2, window_mixtures=2)
    ckpt.save_model(tmp_path / "g", SynthesisNetwork(cfg), {"alphabet": "abc"})
    return SynthesisNetwork, json.loads((tmp_path / "g.json").read_text())


def _set(path: str, value):
    def edit(meta):
        *parents, last = path.split(".")
        d = meta
        for k in parents:
            d = d[k]
        if value is _DELETE:
            del d[last]
        else:
            d[last] = value
        return meta

    return edit


_DELETE = object()
BAD_SIDECARS = {  # id: (edit of the description, what the error must say)
    "format_version-abc": (_set("format_version", "abc"), r'format_version is "abc", expected an integer from 1 to 1'),
    "format_version-missing": (_set("format_version", _DELETE), r"format_version is null, expected an integer"),
    "top-level-list": (lambda m: [m], r"the top level is \[.*expected a JSON object"),
    "alphabet-12": (_set("alphabet", 12), r"alphabet is 12, expected a string of characters"),
    "alphabet-duplicates": (_set("alphabet", "aab"), r'alphabet is "aab", expected a string of characters, each once'),
    "normalizer-list": (_set("normalizer", [1, 2]), r"normalizer is \[1, 2\], expected \{\"mean\""),
    "tokenizer-huge": (_set("tokenizer", {"kind": "polar", "n_theta": 10**9}), r"tokenizer is .*at most 65536"),
    "hidden-abc": (_set("model.config.hidden", "abc"),
                   r'model\.config\.hidden is "abc", expected an integer from 0 to 65536 \(GravesConfig\.hidden\)'),
    "hidden-minus-1": (_set("model.config.hidden", -1), r"model\.config\.hidden is -1, expected an integer from 0"),
    "hidden-zero": (_set("model.config.hidden", 0), r"model\.config is not a valid GravesConfig: .*positive"),
    "hidden-200000": (_set("model.config.hidden", 200000), r"model\.config\.hidden is 200000, expected an integer from 0 to 65536"),
    "hidden-60000": (_set("model.config.hidden", 60000), r"model\.config describes a SynthesisNetwork of [\d,]+ parameters, more than"),
    "layers-true": (_set("model.config.layers", True), r"model\.config\.layers is true, expected an integer from 0 to 256"),
    "layers-100000": (_set("model.config.layers", 100000), r"model\.config\.layers is 100000, expected an integer from 0 to 256"),
    "dropout-str": (_set("model.config.dropout", "x"), r'model\.config\.dropout is "x", expected a finite number'),
    "config-list": (_set("model.config", [1]), r"model\.config is \[1\], expected a JSON object"),
    "config-other-model": (_set("model.config.window_mixtures", 3), r"g\.safetensors: weights do not fit SynthesisNetwork.*window"),
    "model-missing": (_set("model", _DELETE), r"model is null, expected a JSON object"),
    "class-missing": (_set("model.class", _DELETE), r"model\.class is null, expected a model class name"),
    "class-unknown": (_set("model.class", "NoSuchNet"), r"g\.json: model\.class: unknown model class 'NoSuchNet'"),
    "sha256-missing": (_set("weights.sha256", _DELETE), r"weights\.sha256 is missing"),
    "future-field": (_set("model.config.future_field", 1), r"future_field .*upgrade"),
}


@pytest.mark.parametrize("case", sorted(BAD_SIDECARS))
def test_bad_description_is_a_named_error(tmp_path, monkeypatch, case):
    cls, meta = _graves(tmp_path)
    edit, message = BAD_SIDECARS[case]
    (tmp_path / "g.json").write_text(json.dumps(edit(meta)))
    built = []  # the device of every real construction: a refused description must build nothing
    init = cls.__init__
    monkeypatch.setattr(cls, "__init__", lambda self, *a, **k: (built.append(torch.empty(0).device.type), init(self, *a, **k))[1])
    t0 = time.perf_counter()
    with pytest.raises(ckpt.CheckpointError, match=message) as err:
        ckpt.load_model(tmp_path / "g")
    assert time.perf_counter() - t0 < 10  # hidden 200000 would try to allocate 640 GB
    assert "cpu" not in built, "the model was allocated before the description was refused"
    assert str(tmp_path / "g") in str(err.value)  # names the file
    if case not in ("class-unknown", "future-field", "config-other-model"):
        assert "save the model again" in str(err.value)  # and the fix


def test_good_description_still_loads_after_checks(tmp_path):
    cls, _ = _graves(tmp_path)
    model, _ = ckpt.load_model(tmp_path / "g")
    assert isinstance(model, cls) and model.config.hidden == 8 and model.alphabet.chars == "abc"


def test_config_from_dict_checks_types_and_tuples():
    cfg = ckpt.config_from_dict(NetConfig, {"sizes": [1, 2], "names": ["x"], "scale": 2, "note": None})
    assert cfg.sizes == (1, 2) and cfg.names == ("x",) and cfg.scale == 2.0 and isinstance(cfg.scale, float)
    with pytest.raises(ckpt.CheckpointError, match=r"model\.config\.sizes is \[1, 2, 3\], expected a list of 2 items"):
        ckpt.config_from_dict(NetConfig, {"sizes": [1, 2, 3]})
    with pytest.raises(ckpt.CheckpointError, match=r"model\.config\.note is 5, expected a string or null"):
        ckpt.config_from_dict(NetConfig, {"note": 5})
    with pytest.raises(ckpt.CheckpointError, match=r"model\.config\.scale is NaN, expected a finite number"):
        ckpt.config_from_dict(NetConfig, {"scale": float("nan")})

    @dataclass
    class Needs:
        size: int

    with pytest.raises(ckpt.CheckpointError, match=r"model\.config\.size is missing \(Needs needs it\)"):
        ckpt.config_from_dict(Needs, {})


# ----------------------------------------------------------------------------------------------------------
# training state checksum


def _state(tmp_path):
    t = {"model.w": torch.arange(64.0), "rng.torch": torch.get_rng_state(), "half": torch.ones(3, dtype=torch.bfloat16)}
    return ckpt.save_training_state(tmp_path / "state", t, {"step": 3, "best": 1.5}), t


def test_training_state_bit_flip_in_tensors_is_refused(tmp_path):
    path, t = _state(tmp_path)
    tensors, meta = ckpt.load_training_state(path)
    assert meta["step"] == 3 and all(torch.equal(tensors[k], t[k]) for k in t)
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x01  # one bit inside model.w / the RNG state
    path.write_bytes(bytes(blob))
    with pytest.raises(ckpt.CheckpointError, match=r"state\.safetensors: the training state is damaged.*earlier.*start the run over"):
        ckpt.load_training_state(path)


def test_training_state_edit_of_its_json_is_refused(tmp_path):
    path, _ = _state(tmp_path)
    blob = path.read_bytes()
    assert blob.count(b'\\"step\\": 3') == 1  # the JSON is a string inside the safetensors header
    path.write_bytes(blob.replace(b'\\"step\\": 3', b'\\"step\\": 7'))  # still valid JSON, same length
    with pytest.raises(ckpt.CheckpointError, match="damaged"):
        ckpt.load_training_state(path)


def test_training_state_without_checksum_loads_with_a_warning(tmp_path):
    """States written before the checksum existed still resume."""
    from safetensors.torch import save_file

    body = json.dumps({"format": ckpt.STATE_FORMAT, "format_version": 1, "step": 5})
    save_file({"a": torch.zeros(2)}, str(tmp_path / "state.safetensors"), metadata={"format": "pt", "handwriting": body})
    with pytest.warns(UserWarning, match="before training states carried a checksum"):
        tensors, meta = ckpt.load_training_state(tmp_path)
    assert meta["step"] == 5 and torch.equal(tensors["a"], torch.zeros(2))


def test_portable_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ckpt.portable_path("runs/x/best.safetensors") == "runs/x/best.safetensors"
    assert ckpt.portable_path(tmp_path / "runs" / "best.safetensors") == "runs/best.safetensors"
    assert ckpt.portable_path("/elsewhere/on/this/machine/best.safetensors") == "best.safetensors"


def test_provenance_helpers():
    hw = ckpt.hardware_info("cpu")
    assert hw["torch"] == torch.__version__ and hw["device"] == "cpu"
    commit = ckpt.git_commit()
    assert commit is None or len(commit.split("-")[0]) == 40
