"""The trainer: exact resume, non-finite steps, clipping, schedules, logging, and the `handwriting train` CLI.

Most tests use a tiny stand-in model (an LSTM with a diagonal-Gaussian + Bernoulli head, with dropout so
that the training stream draws random numbers) that follows the training contract of docs/INTERFACES.md.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from handwriting import checkpoint as ckpt
from handwriting.devices import bf16_matmul_supported
from handwriting.train import GravesClipper, Logger, TrainConfig, Trainer, TrainError, lr_factor


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: exact numbers, no OpenMP spinning


# ----------------------------------------------------------------------------------------------------------
# stand-ins


@dataclass
class TinyConfig:
    hidden: int = 8
    dropout: float = 0.2


class TinyModel(nn.Module):
    def __init__(self, config: TinyConfig | None = None):
        super().__init__()
        self.config = config or TinyConfig()
        h = self.config.hidden
        self.lstm = nn.LSTM(3, h, batch_first=True)
        self.drop = nn.Dropout(self.config.dropout)
        self.head = nn.Linear(h, 5)
        self.poison: set[int] = set()  # forward calls whose loss becomes NaN
        self.calls = 0

    def training_step(self, batch):
        self.calls += 1
        x, mask = batch["x"], batch["mask"]
        inp, tgt, m = x[:, :-1], x[:, 1:], mask[:, 1:].float()
        h, _ = self.lstm(inp)
        o = self.head(self.drop(h)).float()
        mu, log_s, e = o[..., :2], o[..., 2:4], o[..., 4]
        z = (tgt[..., :2] - mu) / log_s.exp()
        nll = 0.5 * (z**2).sum(-1) + log_s.sum(-1) + math.log(2 * math.pi)
        nll = nll + nn.functional.binary_cross_entropy_with_logits(e, tgt[..., 2], reduction="none")
        nll_sum = (nll * m).sum()
        points = m.sum()
        loss = nll_sum / points
        if self.training and self.calls in self.poison:
            loss = loss * float("nan")
        return {"loss": loss, "nll_sum": float(nll_sum.detach()), "points": int(points), "sequences": int(x.shape[0])}


class SeqData(torch.utils.data.Dataset):
    def __init__(self, n: int = 20, seed: int = 0, augment: bool = True):
        self.augment = augment
        g = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            t = int(g.integers(5, 12))
            a = g.normal(size=(t, 3)).astype(np.float32)
            a[:, 2] = (g.random(t) < 0.2).astype(np.float32)
            a[-1, 2] = 1
            self.items.append(torch.from_numpy(a))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        # a little augmentation drawn from the global RNGs (torch and numpy), as a data set might do
        a = self.items[i].clone()
        if self.augment:
            a[:, :2] *= 1.0 + 0.01 * float(np.random.randn()) + 0.01 * float(torch.randn(()))
        return a


def collate(items):
    T = max(len(a) for a in items)
    x = torch.zeros(len(items), T, 3)
    mask = torch.zeros(len(items), T, dtype=torch.bool)
    for i, a in enumerate(items):
        x[i, : len(a)] = a
        mask[i, : len(a)] = True
    return {"x": x, "mask": mask}


class StatefulBatchSampler:
    """A bucketing-like batch sampler with its own numpy RNG that advances every epoch and a state_dict."""

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        self.n, self.batch_size = n, batch_size
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        order = self.rng.permutation(self.n)
        for i in range(0, self.n, self.batch_size):
            yield order[i : i + self.batch_size].tolist()

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


def loader(kind: str = "shuffle", n: int = 20, batch_size: int = 4):
    ds = SeqData(n)
    if kind == "plain":
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)
    if kind == "shuffle":
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate)
    return torch.utils.data.DataLoader(ds, batch_sampler=StatefulBatchSampler(n, batch_size), collate_fn=collate)


def make(steps: int, out_dir=None, kind: str = "shuffle", seed: int = 0, **cfg) -> Trainer:
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = TinyModel()
    config = TrainConfig(steps=steps, seed=seed, progress=False, out_dir=out_dir, **{"lr": 1e-2, **cfg})
    return Trainer(model, loader(kind), loader("plain", n=8), config)


# ----------------------------------------------------------------------------------------------------------
# exact resume


@pytest.mark.parametrize(
    "kind,n_first,clip",
    [("shuffle", 7, "norm"), ("stateful", 7, "graves"), ("shuffle", 5, "none")],  # 5 = at an epoch boundary
)
def test_resume_equals_uninterrupted(tmp_path, kind, n_first, clip):
    total = 13
    straight = make(total, kind=kind, clip=clip, eval_every=4)
    straight.fit()
    losses = [r["loss"] for r in straight.history]
    assert len(losses) == total and all(math.isfinite(v) for v in losses)

    first = make(n_first, out_dir=tmp_path / "run", kind=kind, clip=clip, eval_every=4)
    first.fit()
    assert [r["loss"] for r in first.history] == losses[:n_first]

    # a fresh process would start from other RNG states and other initial weights
    second = make(total, out_dir=tmp_path / "run", kind=kind, clip=clip, seed=99, eval_every=4)
    second.load_state(tmp_path / "run")
    assert second.step == n_first
    second.fit()
    resumed = [r["loss"] for r in second.history]
    assert resumed == losses[n_first:]  # bit for bit
    for a, b in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    at = {v["step"]: v["nll_per_sequence"] for v in straight.validation}
    assert [v["nll_per_sequence"] for v in second.validation if v["step"] > n_first] == [
        at[s] for s in (8, 12, 13)
    ]


def test_checkpoint_every_and_best(tmp_path):
    t = make(6, out_dir=tmp_path, checkpoint_every=2, eval_every=3)
    summary = t.fit()
    for name in ("state.safetensors", "last.safetensors", "last.json", "best.safetensors", "best.json"):
        assert (tmp_path / name).is_file(), name
    assert not list(tmp_path.glob("*.part"))
    model, meta = ckpt.load_model(tmp_path / "best")
    assert isinstance(model, TinyModel)
    assert meta["metrics"]["nll_per_sequence"] == pytest.approx(summary["best_nll_per_sequence"])
    assert meta["training"]["steps"] in (3, 6)
    assert meta["training"]["hardware"]["torch"] == torch.__version__
    last, meta_last = ckpt.load_model(tmp_path / "last")
    assert meta_last["training"]["steps"] == 6
    for a, b in zip(last.state_dict().values(), t.model.state_dict().values()):
        assert torch.equal(a, b)


def test_keep_checkpoints_snapshots_each_checkpoints_model(tmp_path):
    t = make(6, out_dir=tmp_path, checkpoint_every=2, keep_checkpoints=True)
    t.fit()
    assert sorted(p.name for p in tmp_path.glob("step*.safetensors")) == ["step2.safetensors", "step4.safetensors", "step6.safetensors"]
    snap, meta = ckpt.load_model(tmp_path / "step4")
    assert meta["training"]["steps"] == 4
    final, _ = ckpt.load_model(tmp_path / "step6")
    for a, b in zip(final.state_dict().values(), t.model.state_dict().values()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(snap.state_dict().values(), final.state_dict().values()))


def test_resume_wrong_model_refused(tmp_path):
    make(2, out_dir=tmp_path).fit()
    other = Trainer(TinyModel(TinyConfig(hidden=5)), loader(), None, TrainConfig(steps=4, progress=False))
    with pytest.raises(TrainError, match="do not fit"):
        other.load_state(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="no training state"):
        other.load_state(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------------------
# non-finite steps


def test_nan_step_skipped_counted_and_weights_untouched():
    t = make(5)
    t.model.poison = {3}
    before = {}

    def snapshot():
        return {k: v.clone() for k, v in t.model.state_dict().items()}, {
            k: {n: (x.clone() if torch.is_tensor(x) else x) for n, x in s.items()} for k, s in t.optimizer.state.items()
        }

    # run two good steps by hand, then the poisoned one
    for _ in range(2):
        t.train_step(t._next_batch())
    before, opt_before = snapshot()
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        rec = t.train_step(t._next_batch())
    assert rec["skipped"] and math.isnan(rec["loss"]) and t.skipped_steps == 1
    after, opt_after = snapshot()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    for p in opt_before:
        for n, x in opt_before[p].items():
            assert torch.equal(x, opt_after[p][n]) if torch.is_tensor(x) else x == opt_after[p][n]
    assert all(p.grad is None for p in t.model.parameters())
    rec = t.train_step(t._next_batch())  # training goes on
    assert not rec["skipped"] and math.isfinite(rec["loss"])
    assert all(torch.isfinite(v).all() for v in t.model.state_dict().values())


def test_nan_in_fit_reported(capsys):
    t = make(4)
    t.model.poison = {2}
    with pytest.warns(RuntimeWarning):
        summary = t.fit()
    assert summary["skipped_steps"] == 1
    assert "1 step(s) with a non-finite" in capsys.readouterr().err


def test_too_many_bad_steps_stop():
    t = make(10, max_bad_steps=3)
    t.model.poison = set(range(1, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainError, match="3 non-finite steps in a row"):
            t.fit()


# ----------------------------------------------------------------------------------------------------------
# clipping, schedule, optimizers, amp


def test_graves_clipper_clamps_output_and_lstm_derivatives():
    torch.manual_seed(0)
    model = TinyModel(TinyConfig(dropout=0.0)).train()
    clip = GravesClipper(model, output=100.0, lstm=10.0)
    assert clip.output_modules == [model.head] and clip.lstm_modules == [model.lstm]
    batch = collate([torch.randn(6, 3) for _ in range(3)])
    h, _ = model.lstm(batch["x"])
    o = model.head(h)
    (o * 1e9).sum().backward()
    # every element of d loss / d o was clamped to 100: the bias gradient is 100 × (number of outputs)
    assert torch.allclose(model.head.bias.grad, torch.full((5,), 100.0 * 3 * 6))
    model.zero_grad()
    clip.scale = 50.0  # the loss is a mean over 50 points: clamp at ±100/50
    o = model.head(model.lstm(batch["x"])[0])
    (o * 1e9).sum().backward()
    assert torch.allclose(model.head.bias.grad, torch.full((5,), 2.0 * 3 * 6))
    clip.remove()
    model.zero_grad()
    o = model.head(model.lstm(batch["x"])[0])
    o.sum().mul(1e9).backward()
    assert model.head.bias.grad.abs().max() > 1e9


def test_lr_schedule_step_decay_and_warmup():
    f = lr_factor(TrainConfig(schedule="step", step_size=10, gamma=0.5, warmup_steps=4))
    assert [f(s) for s in (0, 3, 4, 9, 10, 25)] == [0.25, 1.0, 1.0, 1.0, 0.5, 0.25]
    t = make(12, schedule="step", step_size=5, gamma=0.1)
    t.fit()
    lrs = [r["lr"] for r in t.history]
    assert lrs[0] == pytest.approx(1e-2) and lrs[5] == pytest.approx(1e-3) and lrs[10] == pytest.approx(1e-4)


def test_graves_rmsprop_recipe():
    c = TrainConfig.graves(steps=3, progress=False)
    t = Trainer(TinyModel(), loader(), None, c)
    g = t.optimizer.param_groups[0]
    assert isinstance(t.optimizer, torch.optim.RMSprop)
    assert (g["lr"], g["alpha"], g["eps"], g["momentum"], g["centered"]) == (1e-4, 0.95, 1e-4, 0.9, True)
    assert t.fit()["steps"] == 3
    r = t.history[0]
    assert r["loss"] == pytest.approx(r["nll_per_sequence"], rel=1e-5)  # Graves' unit: nats per sequence


def test_config_validation():
    with pytest.raises(TrainError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(TrainError, match="steps or epochs"):
        TrainConfig(steps=None)


needs_native_bf16 = pytest.mark.skipif(
    not bf16_matmul_supported("cpu"),
    reason="this CPU has no native bf16 (AVX-512-BF16 or AMX): --amp bf16 is refused here (tested below)",
)


@needs_native_bf16
def test_bf16_autocast_on_cpu():
    t = make(3, amp="bf16", optimizer="adamw")
    t.fit()
    assert all(math.isfinite(r["loss"]) for r in t.history)


def test_bf16_is_refused_in_one_line_where_the_cpu_emulates_it(monkeypatch):
    import handwriting.train.loop as loop

    monkeypatch.setattr(loop, "bf16_matmul_supported", lambda device: False)
    with pytest.raises(TrainError, match="no native bf16.*use --amp none"):
        make(3, amp="bf16")


def test_cpu_without_bf16_is_recognised_from_onednns_isa_cap(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes this machine behave as an AVX2-only CPU (how the suite is checked for one)."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not bf16_matmul_supported("cpu")


@needs_native_bf16
def test_graves_network_trains_under_bf16_from_the_command_line(tmp_path):
    """--amp bf16 sets the Graves network's own matmul precision (autocast cannot reach its fused
    recurrences: it used to fail with 'mat1 and mat2 must have the same dtype')."""
    from handwriting.cli import main

    out = tmp_path / "run"
    rc = main(["train", "graves", "--data", "synthetic", "--synthetic", "40", "--size", "tiny", "--steps", "2",
               "--amp", "bf16", "--eval-every", "2", "--no-progress", "--out", str(out)])
    assert rc == 0
    meta = ckpt.read_meta(out / "final")
    assert meta["model"]["config"]["precision"] == "bf16"


def test_epochs_mode_and_validation_units():
    t = make(None, epochs=2)
    s = t.fit()
    assert s["steps"] == 10 and s["epochs"] == 2  # 20 sequences, batches of 4
    v = t.validation[-1]
    assert v["sequences"] == 8
    assert v["nll_per_sequence"] == pytest.approx(v["nll_per_point"] * v["points"] / v["sequences"])
    assert len(t.validation) == 2  # once per epoch


def test_validation_does_not_change_training_stream():
    a = make(6)
    a.fit()
    b = make(6, eval_every=1)
    b.fit()
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]


# ----------------------------------------------------------------------------------------------------------
# logging


def test_tensorboard_scalars_and_sample_images(tmp_path):
    calls = []

    def sample_fn(model, step):
        calls.append(step)
        torch.randn(3)  # drawing samples must not disturb the training RNG
        return {"samples/line": np.full((8, 16), 200, np.uint8)}

    t = make(4, out_dir=tmp_path, sample_every=2, log_every=1)
    t.sample_fn = sample_fn
    t.fit()
    assert calls == [2, 4]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    tags = ea.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "valid/nll_per_sequence"} <= set(tags["scalars"])
    assert "samples/line" in tags["images"]
    ref = make(4, sample_every=None)
    ref.fit()
    assert [r["loss"] for r in ref.history] == [r["loss"] for r in t.history]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed (optional extra: pip install wandb)")
def test_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    t = make(2, out_dir=tmp_path, wandb=True)
    t.fit()
    assert list(tmp_path.rglob("*.wandb"))


def test_wandb_missing_is_a_clear_error(monkeypatch):
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed")
    t = make(1, wandb=True)
    with pytest.raises(TrainError, match="pip install"):
        t.fit()


class WeightsOnly(TinyModel):
    """Uses the LSTM's and head's weights without calling the modules (like a hand-written recurrence)."""

    def training_step(self, batch):
        x, mask = batch["x"], batch["mask"]
        w = self.lstm.weight_ih_l0[: self.config.hidden]
        h = torch.tanh(nn.functional.linear(x[:, :-1], w))
        o = nn.functional.linear(h, self.head.weight, self.head.bias)
        m = mask[:, 1:].float()
        nll = ((o[..., :3] - x[:, 1:]) ** 2).sum(-1)
        nll_sum = (nll * m).sum()
        return {"loss": nll_sum / m.sum(), "nll_sum": float(nll_sum.detach()), "points": int(m.sum()), "sequences": x.shape[0]}


class NativeClip(TinyModel):
    def __init__(self):
        super().__init__(TinyConfig(dropout=0.0))
        self.clip_calls = []

    def set_gradient_clipping(self, output, lstm):
        self.clip_calls.append((output, lstm))


def test_graves_clipping_fallback_and_native_protocol():
    torch.manual_seed(0)
    t = Trainer(WeightsOnly(TinyConfig(dropout=0.0)), loader(), None, TrainConfig(steps=2, clip="graves", clip_norm=0.5, progress=False))
    with pytest.warns(RuntimeWarning, match="does not call .*clipping the gradient norm"):
        t.fit()
    assert all(r["grad_norm"] > 0 for r in t.history)
    model = NativeClip()
    t = Trainer(model, loader(), None, TrainConfig(steps=1, clip="graves", progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.fit()
    points = t.history[0]["points"]
    assert model.clip_calls[0] == pytest.approx((100.0 / points, 10.0 / points))
    t.close()
    assert model.clip_calls[-1] == (None, None)


# ----------------------------------------------------------------------------------------------------------
# the real models and data layer, and the command line




def _require(module: str):
    """The package's own modules: a broken import fails the test (it must never be skipped)."""
    return importlib.import_module(module)


def test_resume_exact_with_graves_and_bucket_sampler(tmp_path):
    g = _require("handwriting.models.graves")
    td = _require("handwriting.datasets.torch_data")
    from handwriting.strokes import AugmentConfig

    rng = np.random.default_rng(0)
    samples = []
    for i in range(24):
        n = int(rng.integers(8, 20))
        off = rng.normal(0, 1, (n, 3)).astype(np.float32)
        off[:, 2] = 0
        off[rng.integers(0, n, 2), 2] = 1
        off[-1, 2] = 1
        samples.append(ckpt_sample(off, "ab"[i % 2] + "c" * (i % 3)))
    alphabet = td.Alphabet("abc")

    def run(steps, out=None, resume=False, seed=0):
        torch.manual_seed(seed)
        model = g.SynthesisNetwork(g.GravesConfig(alphabet_size=len(alphabet), hidden=8, layers=2, mixtures=2, window_mixtures=2, precision="fp32", dropout=0.1))
        ds = td.StrokeDataset(samples, alphabet, normalizer="fit", augment=AugmentConfig(), seed=3)
        cfg = TrainConfig(steps=steps, lr=3e-3, progress=False, out_dir=out, checkpoint_every=None)
        t = Trainer(model, td.make_loader(ds, 5, seed=1), None, cfg)
        if resume:
            t.load_state(out)
        t.fit()
        return [r["loss"] for r in t.history]

    full = run(9)
    first = run(4, out=tmp_path)  # 24 sequences in batches of 5: resumes mid-epoch
    assert first == full[:4]
    assert run(9, out=tmp_path, resume=True, seed=5) == full[4:]


def ckpt_sample(off, text):
    from handwriting.strokes import Sample

    return Sample(off, text=text)


def test_cli_train_graves_synthetic_end_to_end(tmp_path, capsys):
    _require("handwriting.models.graves")
    _require("handwriting.datasets.torch_data")
    _require("handwriting.datasets.synthetic")
    from handwriting.cli import main

    out = tmp_path / "run"
    argv = ["train", "graves", "--data", "synthetic", "--steps", "3", "--size", "tiny", "--synthetic", "24",
            "--batch-size", "4", "--out", str(out), "--eval-every", "2", "--sample-every", "3", "--no-progress",
            "--checkpoint-every", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation NLL" in printed and "nats/sequence" in printed
    for name in ("final", "best", "last"):
        assert (out / f"{name}.safetensors").is_file() and (out / f"{name}.json").is_file()
    model, meta = ckpt.load_model(out / "final")
    assert type(model).__name__ == "SynthesisNetwork" and model.config.hidden == 32
    tr = meta["training"]
    assert tr["command"].startswith("handwriting train graves ") and "--steps 3" in tr["command"]
    assert "--size tiny" in tr["command"] and tr["steps"] == 3 and len(tr["data_sha256"]) == 64
    assert tr["wall_time_s"] > 0 and "torch" in tr["hardware"]
    assert meta["normalizer"] and meta["alphabet"] and meta["metrics"]["nll_per_sequence"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out / "tb"))
    ea.Reload()
    assert "samples/text" in ea.Tags()["images"] and "window/text" in ea.Tags()["images"]
    # continue the same run for 1 more step
    assert main(["train", "--resume", str(out), "--steps", "4", "--no-progress"]) == 0
    assert ckpt.read_meta(out / "final")["training"]["steps"] == 4
    # the trained model writes
    from handwriting.generate import write

    w = write("ab", model=str(out / "final"), seed=1, max_steps=20, unknown="replace")
    assert w.offsets.shape[1] == 3


def test_cli_train_errors(capsys):
    from handwriting.cli import main

    assert main(["train"]) == 2
    assert "say what to train" in capsys.readouterr().err
    assert main(["train", "graves", "--data", "nonsense", "--no-progress"]) == 2
    assert "use synthetic, bigbank" in capsys.readouterr().err


@pytest.mark.parametrize("kind,module", [("transformer", "handwriting.models.transformer"), ("mdn-transformer", "handwriting.models.mdn_transformer")])
def test_cli_train_transformers_smoke(tmp_path, kind, module):
    _require(module)
    from handwriting.cli import main

    out = tmp_path / kind
    argv = ["train", kind, "--data", "synthetic", "--steps", "2", "--size", "tiny", "--synthetic", "16", "--batch-size", "4",
            "--out", str(out), "--no-progress", "--sample-every", "2"]  # fmt: skip
    assert main(argv) == 0
    model, meta = ckpt.load_model(out / "final")
    assert meta["training"]["steps"] == 2 and meta["alphabet"]
    assert meta["model"]["config"]["n_layer"] == 2


@pytest.mark.parametrize("kind,module", [("transformer", "handwriting.models.transformer"), ("mdn-transformer", "handwriting.models.mdn_transformer")])
def test_cli_dropout_reaches_the_model_and_is_refused_where_there_is_none(tmp_path, capsys, kind, module):
    _require(module)
    from handwriting.cli import main

    base = ["train", kind, "--data", "synthetic", "--size", "tiny", "--synthetic", "16", "--batch-size", "4", "--steps", "1",
            "--no-progress", "--sample-every", "100"]  # fmt: skip
    assert main(base + ["--dropout", "0.3", "--out", str(tmp_path / "a")]) == 0
    a, meta = ckpt.load_model(tmp_path / "a" / "final")
    assert a.config.dropout == 0.3 and meta["model"]["config"]["dropout"] == 0.3
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in a.modules())
    # with --init the starting model's weights and a new dropout: it is a training setting, not architecture
    assert main(base + ["--dropout", "0.1", "--lr", "1e-12", "--init", str(tmp_path / "a" / "final"), "--out", str(tmp_path / "b")]) == 0
    b, _ = ckpt.load_model(tmp_path / "b" / "final")
    assert b.config.dropout == 0.1 and b.config.d_model == a.config.d_model
    capsys.readouterr()
    assert main(base + ["--dropout", "1.5", "--out", str(tmp_path / "c")]) == 2
    assert "--dropout 1.5" in capsys.readouterr().err
    assert main(["train", "graves", "--data", "synthetic", "--dropout", "0.1", "--out", str(tmp_path / "g")]) == 2
    assert "only the transformers have dropout" in capsys.readouterr().err


def test_cli_text_dropout_reaches_the_cursive_transformer_only(tmp_path, capsys):
    from handwriting.cli import main

    base = ["train", "transformer", "--data", "synthetic", "--size", "tiny", "--synthetic", "16", "--batch-size", "4",
            "--steps", "1", "--no-progress", "--sample-every", "100"]  # fmt: skip
    assert main(base + ["--text-dropout", "0.2", "--out", str(tmp_path / "a")]) == 0
    a, meta = ckpt.load_model(tmp_path / "a" / "final")
    assert a.config.text_dropout == 0.2 and meta["model"]["config"]["text_dropout"] == 0.2
    # with --init: a training setting, so the new share replaces the starting model's
    assert main(base + ["--text-dropout", "0.1", "--init", str(tmp_path / "a" / "final"), "--out", str(tmp_path / "b")]) == 0
    assert ckpt.load_model(tmp_path / "b" / "final")[0].config.text_dropout == 0.1
    capsys.readouterr()
    assert main(base + ["--text-dropout", "1", "--out", str(tmp_path / "c")]) == 2
    assert "--text-dropout 1" in capsys.readouterr().err
    mdn = ["train", "mdn-transformer", "--data", "synthetic", "--text-dropout", "0.1", "--out", str(tmp_path / "m")]
    assert main(mdn) == 2
    assert "only the cursive transformer hides its text" in capsys.readouterr().err


@pytest.mark.parametrize("kind,module", [("transformer", "handwriting.models.transformer"), ("mdn-transformer", "handwriting.models.mdn_transformer")])
def test_cli_init_starts_from_saved_weights_and_refuses_another_architecture(tmp_path, capsys, kind, module):
    _require(module)
    from handwriting.cli import main

    base = ["train", kind, "--data", "synthetic", "--size", "tiny", "--synthetic", "16", "--batch-size", "4",
            "--no-progress", "--sample-every", "100"]  # fmt: skip
    assert main(base + ["--steps", "2", "--out", str(tmp_path / "a")]) == 0
    a, meta_a = ckpt.load_model(tmp_path / "a" / "final")
    # a learning rate of 1e-12 moves no weight by more than ~1e-12: the fine-tuned run ends where it started, on a's weights
    assert main(base + ["--steps", "1", "--lr", "1e-12", "--init", str(tmp_path / "a" / "final"), "--out", str(tmp_path / "b")]) == 0
    b, meta_b = ckpt.load_model(tmp_path / "b" / "final")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, rtol=0, atol=1e-9), name
    assert meta_b["training"]["init_from"]["sha256"] == meta_a["weights"]["sha256"]
    # a fresh run with the same seed is not a's model: the init really did something
    assert main(base + ["--steps", "1", "--lr", "1e-12", "--out", str(tmp_path / "c")]) == 0
    c, _ = ckpt.load_model(tmp_path / "c" / "final")
    assert any(not torch.allclose(x, y, rtol=0, atol=1e-3) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    capsys.readouterr()
    assert main(base + ["--steps", "1", "--d-model", "48", "--init", str(tmp_path / "a" / "final"), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "d_model=32" in err and "--d-model 48" in err
    assert main(base + ["--steps", "1", "--init", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e")]) == 2
    if kind == "transformer":  # new models have the end marker; --end-marker adds it to one saved without it
        assert a.config.end_marker
        assert main(base + ["--steps", "1", "--no-end-marker", "--out", str(tmp_path / "p")]) == 0
        p, meta_p = ckpt.load_model(tmp_path / "p" / "final")
        assert not p.config.end_marker and "--no-end-marker" in meta_p["training"]["command"]
        assert main(base + ["--steps", "1", "--lr", "1e-12", "--init", str(tmp_path / "p" / "final"),
                            "--out", str(tmp_path / "q")]) == 0  # fmt: skip
        assert not ckpt.load_model(tmp_path / "q" / "final")[0].config.end_marker  # --init keeps the model's choice
        assert main(base + ["--steps", "1", "--lr", "1e-12", "--end-marker", "--init", str(tmp_path / "p" / "final"),
                            "--out", str(tmp_path / "f")]) == 0  # fmt: skip
        f, meta_f = ckpt.load_model(tmp_path / "f" / "final")
        assert f.config.end_marker and meta_f["model"]["config"]["end_marker"] is True
        for name, x in p.state_dict().items():  # every weight kept, the marker's rows added
            assert torch.allclose(x, f.state_dict()[name][: x.shape[0]], rtol=0, atol=1e-9), name
        assert f.text.char_emb.weight.shape[0] == p.text.char_emb.weight.shape[0] + 1
    else:
        assert main(base + ["--steps", "1", "--end-marker", "--out", str(tmp_path / "g")]) == 2
        assert "--end-marker is for the cursive transformer" in capsys.readouterr().err


def test_a_resumed_fine_tune_keeps_the_weights_it_began_from_when_its_init_is_replaced(tmp_path):
    _require("handwriting.models.graves")
    import shutil

    from handwriting.cli import main

    base = ["--data", "synthetic", "--size", "tiny", "--synthetic", "16", "--batch-size", "4", "--no-progress",
            "--sample-every", "100", "--words-per-line", "1"]  # fmt: skip
    for run, steps in (("a", "1"), ("z", "2")):  # the same data and alphabet, other weights
        assert main(["train", "graves", *base, "--steps", steps, "--out", str(tmp_path / run)]) == 0
    _, meta_a = ckpt.load_model(tmp_path / "a" / "final")
    _, meta_z = ckpt.load_model(tmp_path / "z" / "final")
    init = tmp_path / "init"
    for ext in (".json", ".safetensors"):
        shutil.copy(tmp_path / "a" / ("final" + ext), str(init) + ext)
    assert main(["train", "graves", *base, "--steps", "2", "--checkpoint-every", "1", "--init", str(init),
                 "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    for ext in (".json", ".safetensors"):  # the name --init gave now holds other weights (a model republished)
        shutil.copy(tmp_path / "z" / ("final" + ext), str(init) + ext)
    assert main(["train", "--resume", str(tmp_path / "b"), "--steps", "3"]) == 0
    _, meta_b = ckpt.load_model(tmp_path / "b" / "final")
    assert meta_b["training"]["steps"] == 3
    assert meta_b["training"]["init_from"]["sha256"] == meta_a["weights"]["sha256"] != meta_z["weights"]["sha256"]
    for ext in (".json", ".safetensors"):  # ... or is gone: the run resumes from its own checkpoints all the same
        Path(str(init) + ext).unlink()
    assert main(["train", "--resume", str(tmp_path / "b"), "--steps", "4"]) == 0
    _, meta_b = ckpt.load_model(tmp_path / "b" / "final")
    assert meta_b["training"]["steps"] == 4 and meta_b["training"]["init_from"]["sha256"] == meta_a["weights"]["sha256"]


def test_cli_init_fine_tunes_graves_on_own_json_with_the_models_alphabet_and_normalisation(tmp_path, capsys):
    _require("handwriting.models.graves")
    from handwriting.cli import main
    from handwriting.datasets.jsonink import save_samples
    from handwriting.datasets.synthetic import synthesize

    base = ["--size", "tiny", "--batch-size", "4", "--no-progress", "--sample-every", "100", "--words-per-line", "1"]
    assert main(["train", "graves", "--data", "synthetic", "--synthetic", "24", "--steps", "2", "--out", str(tmp_path / "a"), *base]) == 0
    a, meta_a = ckpt.load_model(tmp_path / "a" / "final")
    words = [w for w in ("mine", "name", "moon", "memo", "nine", "mean", "omen", "inane") if set(w) <= set(a.alphabet.chars)]
    assert len(words) >= 4
    mine = tmp_path / "mine.json"
    save_samples(mine, synthesize(words, seed=3))
    assert main(["train", "graves", "--data", f"json:{mine}", "--init", str(tmp_path / "a" / "final"), "--steps", "1",
                 "--out", str(tmp_path / "b"), *base]) == 0  # fmt: skip
    _, meta_b = ckpt.load_model(tmp_path / "b" / "final")
    # the fine-tuned model keeps the starting model's alphabet, normalisation and fitted κ scale, not the new data's
    assert meta_b["alphabet"] == meta_a["alphabet"] and meta_b["normalizer"] == meta_a["normalizer"]
    assert meta_b["model"]["config"] == meta_a["model"]["config"]
    assert meta_b["training"]["init_from"]["sha256"] == meta_a["weights"]["sha256"]
    # a character the model cannot write is refused, naming it
    odd = next(c for c in "~§¤" if c not in a.alphabet.chars)
    save_samples(mine, synthesize(words[:3], seed=3) + [synthesize(["ab"], seed=4)[0].replace(text="a" + odd)])
    capsys.readouterr()
    assert main(["train", "graves", "--data", f"json:{mine}", "--init", str(tmp_path / "a" / "final"), "--steps", "1",
                 "--out", str(tmp_path / "c"), *base]) == 2  # fmt: skip
    assert repr(odd) in capsys.readouterr().err
    assert not (tmp_path / "c" / "final.safetensors").exists()


def test_resuming_a_transformer_run_saved_before_the_end_marker_keeps_it_without(monkeypatch):
    """Runs saved before ``--end-marker`` existed recorded no such option; resuming one must rebuild the model
    without the marker (new runs get it by default), or its weights would not fit."""
    from argparse import Namespace

    from handwriting import checkpoint as ck
    from handwriting.train.command import _options

    old = {"model": "transformer", "data": "bigbank", "size": "small", "steps": 10}
    monkeypatch.setattr(ck, "load_training_state", lambda path: (None, {"meta": {"training": {"options": old}}}))
    assert _options(Namespace(resume="runs/old"))["end_marker"] is False
    new = dict(old, end_marker=None)
    monkeypatch.setattr(ck, "load_training_state", lambda path: (None, {"meta": {"training": {"options": new}}}))
    assert _options(Namespace(resume="runs/new"))["end_marker"] is None  # built with the marker, as it was


# ----------------------------------------------------------------------------------------------------------
# training never clobbers or loses work, and refuses what it cannot do


TINY_RUN = ["train", "graves", "--data", "synthetic", "--synthetic", "24", "--size", "tiny", "--batch-size", "4",
            "--no-progress"]  # fmt: skip


def test_an_existing_run_is_never_overwritten_unasked(tmp_path, capsys):
    from handwriting.cli import main

    out = tmp_path / "run"
    assert main(TINY_RUN + ["--steps", "2", "--out", str(out)]) == 0
    before = (out / "final.safetensors").read_bytes()
    assert main(TINY_RUN + ["--steps", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "final.safetensors").read_bytes() == before  # untouched
    assert main(TINY_RUN + ["--steps", "3", "--out", str(out), "--resume", str(out), "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(TINY_RUN + ["--steps", "3", "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert ckpt.read_meta(out / "final")["training"]["steps"] == 3


@pytest.mark.parametrize(
    "extra,named",
    [(["--limit", "0"], "--limit"), (["--num-workers", "-1"], "--num-workers"), (["--seed", str(2**70)], "--seed"),
     (["--clip-norm", "-1"], "--clip-norm"), (["--gamma", "nan"], "--gamma"), (["--lr", "inf"], "--lr"),
     (["--valid-fraction", "1.5"], "--valid-fraction"), (["--device", "tpu"], "tpu"),
     (["--steps", "0"], "--steps"), (["--downsample", "1"], "--downsample"), (["--line-share", "0.3"], "--line-share")],
)  # fmt: skip
def test_bad_training_options_fail_at_once_naming_the_option(tmp_path, capsys, monkeypatch, extra, named):
    import handwriting.train.recipes as train
    from handwriting.cli import main

    def no_data(opts):
        raise AssertionError("the data was loaded before the options were checked")

    if named != "tpu":
        monkeypatch.setattr(train, "load_data", no_data)
    assert main(TINY_RUN + ["--out", str(tmp_path / "run")] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_cuda_without_a_gpu_is_a_named_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from handwriting.cli import main

    assert main(TINY_RUN + ["--steps", "1", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_an_unwritable_out_fails_before_any_work(tmp_path, capsys, monkeypatch):
    import handwriting.train.recipes as train
    from handwriting.cli import main

    monkeypatch.setattr(train, "load_data", lambda opts: (_ for _ in ()).throw(AssertionError("loaded data")))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(TINY_RUN + ["--steps", "1", "--out", str(blocker / "run")]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_a_diverged_run_fails_saying_so():
    t = make(20, lr=1e30, clip="none")
    with pytest.warns(RuntimeWarning, match="non-finite"), pytest.raises(TrainError, match="diverged"):
        t.fit()
    assert 2 < t.skipped_steps < t.config.max_bad_steps  # skipped steps not in a long enough row to stop it earlier


class _SignalAt(Logger):
    """A logger that sends the process a signal when step ``at`` is logged (as a user pressing Ctrl-C would)."""

    def __init__(self, at: int, signum: int):
        self.at, self.signum = at, signum

    def log_scalars(self, values, step):
        if step == self.at:
            import os

            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_state_that_resumes_exactly(tmp_path, signame):
    import signal

    from handwriting.train import TrainingInterrupted

    straight = make(13, kind="stateful")
    straight.fit()
    torch.manual_seed(0)
    np.random.seed(0)
    config = TrainConfig(steps=13, lr=1e-2, seed=0, progress=False, out_dir=tmp_path / "run", log_every=1)
    t = Trainer(TinyModel(), loader("stateful"), loader("plain", n=8), config, _SignalAt(6, getattr(signal, signame)))
    with pytest.raises(TrainingInterrupted, match=f"{signame} at step 6.*--resume") as info:
        t.fit()
    assert info.value.exit_code == 128 + getattr(signal, signame)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    resumed = make(13, out_dir=tmp_path / "run", kind="stateful")
    resumed.load_state(tmp_path / "run")
    assert resumed.step == 6
    resumed.fit()
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history][6:]


def test_model_descriptions_hold_no_absolute_paths(tmp_path):
    from handwriting.cli import main
    from handwriting.datasets.jsonink import save_samples
    from handwriting.datasets.synthetic import random_words, synthesize

    data = tmp_path / "mine.json"
    save_samples(data, synthesize(random_words(24, seed=0), seed=0))
    out = tmp_path / "run"
    argv = ["train", "graves", "--data", f"json:{data}", "--size", "tiny", "--batch-size", "4", "--steps", "2",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = (out / "final.json").read_text()
    assert str(tmp_path) not in text and "mine.json" in text
    assert main(["train", "--resume", str(out), "--steps", "3", "--no-progress"]) == 0  # the state keeps what resume needs


def test_train_recognizer_is_the_one_way_to_train_the_reader(tmp_path, capsys, bigbank_path):
    import argparse

    from handwriting.cli import main
    from handwriting.train.command import _options, configure
    from handwriting.train.recipes import RECOGNIZER_DEFAULTS

    parser = argparse.ArgumentParser()
    configure(parser)
    opts = _options(parser.parse_args(["recognizer"]))
    assert (opts["steps"], opts["synthetic"], opts["lr"]) == (RECOGNIZER_DEFAULTS["steps"], RECOGNIZER_DEFAULTS["synthetic"], RECOGNIZER_DEFAULTS["lr"])
    assert _options(parser.parse_args(["graves"]))["steps"] == 2000  # the other kinds keep the general defaults
    out = tmp_path / "rec"
    assert main(["train", "recognizer", "--bigbank", str(bigbank_path), "--steps", "2", "--limit", "120", "--synthetic", "20",
                 "--hidden", "16", "--layers", "1", "--eval-every", "2", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "held-out greedy CER" in printed.err and "beam8" in printed.out
    meta = ckpt.read_meta(out / "final")
    held = meta["metrics"]["heldout_bigbank"]
    assert held["greedy"]["n"] == held["beam8"]["n"] == 12  # all held-out words of the 120 (valid fraction 0.1)
    assert meta["training"]["data_sha256"] and meta["training"]["recipe"].endswith("build_recognizer_training")
    with pytest.raises(SystemExit):  # gone: one command trains the reader
        main(["evaluate", "train-recognizer"])


def test_the_default_graves_recipe_on_bigbank_is_the_run_whose_snapshots_ship():
    """`handwriting train graves --data bigbank` with its defaults is the recipe of the run the course shows
    learning (data/snapshots/graves-learning, measured in the README): same options and TrainConfig but for
    ``steps`` — that run went on past the recipe's end (``--steps 3200``, step size given) — the same learning
    rate at every step of the recipe, and snapshots up to the recipe's last step."""
    import argparse
    import json
    from pathlib import Path

    from handwriting.notebook_utils import checkpoints
    from handwriting.train.command import _options, configure
    from handwriting.train.recipes import _train_config

    snaps = checkpoints(Path(__file__).resolve().parents[1] / "data" / "snapshots" / "graves-learning")
    assert snaps, "data/snapshots/graves-learning holds no stepN snapshots"
    run = json.loads(snaps[-1][1].with_suffix(".json").read_text())["training"]["options"]
    parser = argparse.ArgumentParser()
    configure(parser)
    ours = _options(parser.parse_args(["graves", "--data", "bigbank", "--out", "x"]))
    recipe = ("steps", "batch_size", "size", "lr", "optimizer", "schedule", "step_size", "gamma", "warmup", "clip",
              "clip_norm", "loss_unit", "words_per_line", "lines", "valid_lines", "downsample", "augment", "seed",
              "valid_fraction", "eval_every", "checkpoint_every")
    assert {k: ours.get(k) for k in recipe if k != "steps"} == {k: run.get(k) for k in recipe if k != "steps"}
    assert run["steps"] >= ours["steps"] and snaps[-1][0] == ours["steps"]
    a, b = _train_config(ours, "graves", native_clip=True), _train_config({**run, "out": "x"}, "graves", native_clip=True)
    skip = {"log_every", "progress", "keep_checkpoints", "out_dir", "steps"}
    assert {k: v for k, v in vars(a).items() if k not in skip} == {k: v for k, v in vars(b).items() if k not in skip}
    fa, fb = lr_factor(a), lr_factor(b)
    assert [fa(t) for t in range(ours["steps"])] == [fb(t) for t in range(ours["steps"])]
    scaled = _options(parser.parse_args(["graves", "--data", "bigbank", "--steps", str(2 * ours["steps"])]))
    assert scaled["step_size"] == 2 * ours["step_size"]  # the schedule scales with --steps


def test_train_recipe_trains_keeps_snapshots_and_then_resumes_or_just_loads(tmp_path, capsys):
    """What full mode of notebooks 03/04 calls: the package's recipe into a run folder, resumable."""
    from handwriting.notebook_utils import checkpoints, train_recipe

    run = tmp_path / "nb04"
    opts = ["--size", "tiny", "--steps", "4", "--synthetic", "30", "--checkpoint-every", "2", "--no-progress"]
    model = train_recipe("graves", run, data="synthetic", options=opts)
    assert [s for s, _ in checkpoints(run)] == [2, 4]
    assert model.meta["training"]["command"].startswith("handwriting train graves ")
    assert model.meta["training"]["data"] == "synthetic"
    again = train_recipe("graves", run, data="synthetic")  # finished: the same run is loaded, nothing retrained
    assert "already trained 4 steps" in capsys.readouterr().out
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("data, lattice", [("bigbank", True), ("synthetic", False)])
def test_the_transformer_puts_augmented_bigbank_words_back_on_its_lattice(data, lattice):
    """--augment on bigbank-like data re-records each augmented word on bigbank's lattice (the tokens show it,
    and ink off it costs the network several nats a token); other data has no such recorder."""
    from argparse import Namespace

    from handwriting.datasets.jsonink import bigbank_pen
    from handwriting.strokes import Sample
    from handwriting.train.command import _options
    from handwriting.train.recipes import _transformer_setup

    opts = _options(Namespace(model="transformer", data=data, augment=True, size="tiny"))
    rng = np.random.default_rng(0)
    words = [Sample(np.c_[rng.normal(0, 0.02, (30, 2)), np.eye(30)[-1]].astype(np.float32), t) for t in ["ab", "ba"]]
    _, train_loader, valid_loader, _, _ = _transformer_setup(opts, "transformer", words, words, {})
    assert (train_loader.dataset.pen is bigbank_pen) == lattice and train_loader.dataset.augment is not None
    assert valid_loader.dataset.augment is None


def test_generator_augmentation_keeps_the_writers_slant():
    """--augment on a generator varies shear, scale and rotation around the writer's own hand: over many draws
    the mean slant of an upright stroke stays upright, where the cursive transformer paper's one-sided shear
    (AugmentConfig's defaults) tilts it."""
    from handwriting.datasets.synthetic import estimate_slant
    from handwriting.strokes import AugmentConfig, augment
    from handwriting.train.recipes import generator_augment

    assert generator_augment({}) is None and generator_augment({"augment": False}) is None
    upright = np.zeros((40, 3))
    upright[1:, 1] = -0.05  # one long stroke straight down, then back up a little apart, twice
    upright[20, :2] = [0.3, 1.0]
    upright[19, 2] = 1.0
    rng = np.random.default_rng(0)
    ours = [estimate_slant(augment(upright, rng, generator_augment({"augment": True}))) for _ in range(300)]
    theirs = [estimate_slant(augment(upright, rng, AugmentConfig())) for _ in range(300)]
    assert abs(np.mean(ours) - estimate_slant(upright)) < 0.02
    assert np.std(ours) > 0.03  # it does vary the slant
    assert abs(np.mean(theirs) - estimate_slant(upright)) > 0.1
