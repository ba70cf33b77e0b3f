"""Graves synthesis network speed, side by side with pywritesmooth, in one run.

    python benchmarks/bench_graves.py [--repeats 3] [--threads N] [--json results.json] [--quick] [--no-peer]

The same as ``handwriting bench graves``: one Adam training step of our synthesis network (fp32 and bf16) next
to pywritesmooth's ``HandwritingSynthesisModel`` (PyPI ``pywritesmooth`` 0.9.2, MIT) at the same shapes, the
achieved GFLOP/s against a matmul peak measured in the same run, and sampling speed (a 40-character line at
batch 1, and 32 lines at once).  Compare ratios within one run: on a shared machine absolute times drift.

The peer is only needed for the comparison and is not a dependency of the course.  Install it on its own,
without its (heavy) dependencies::

    python -m pip install --no-deps --target /tmp/bench-peer pywritesmooth==0.9.2
    python benchmarks/bench_graves.py --peer-path /tmp/bench-peer
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `benchmarks.harness` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib
import importlib.util
import math
import os
import statistics
import types
from typing import Any, Callable

from benchmarks.harness import interleaved, main, matmul_peak

PEER_INSTALL = (
    "python -m pip install --no-deps --target /tmp/bench-peer pywritesmooth==0.9.2  "
    "(then pass --peer-path /tmp/bench-peer, or set HANDWRITING_BENCH_PEER)"
)


# ----------------------------------------------------------------------------------------------------------
# the peer: pywritesmooth's HandwritingSynthesisModel, loaded without its package's heavy imports


def load_pywritesmooth(path: str | None = None):
    """The ``HandwritingSynthesisModel`` class of pywritesmooth, or None.

    Looks in ``path``, $HANDWRITING_BENCH_PEER, the installed ``pywritesmooth`` and /tmp/bench-peer.  Only the
    model's module (and the small helper it imports) is executed, not the package's ``__init__`` (which pulls
    in pytorch-lightning, svgwrite, bs4, click...).
    """
    candidates = [path, os.environ.get("HANDWRITING_BENCH_PEER")]
    spec = None
    try:
        spec = importlib.util.find_spec("pywritesmooth")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates.append(str(Path(list(spec.submodule_search_locations)[0]).parent))
    candidates.append("/tmp/bench-peer")
    for base in candidates:
        if not base:
            continue
        root = Path(base)
        if (root / "pywritesmooth").is_dir():
            root = root / "pywritesmooth"
        if not (root / "TrainSmoother" / "HandwritingSynthesisModel.py").is_file():
            continue
        saved = {k: v for k, v in sys.modules.items() if k == "pywritesmooth" or k.startswith("pywritesmooth.")}
        try:
            for name, sub in (("pywritesmooth", ""), ("pywritesmooth.Utility", "Utility"), ("pywritesmooth.TrainSmoother", "TrainSmoother")):
                mod = types.ModuleType(name)
                mod.__path__ = [str(root / sub) if sub else str(root)]
                sys.modules[name] = mod
            module = importlib.import_module("pywritesmooth.TrainSmoother.HandwritingSynthesisModel")
            return module.HandwritingSynthesisModel
        except Exception as exc:  # noqa: BLE001 - report and carry on without the peer
            print(f"  (could not load pywritesmooth from {root}: {exc})", file=sys.stderr)
        finally:
            for k in [k for k in sys.modules if k == "pywritesmooth" or k.startswith("pywritesmooth.")]:
                del sys.modules[k]
            sys.modules.update(saved)
    return None


def _peer_loss(y, es, pis, mu1, mu2, s1, s2, rho):
    """Graves eqs. 23–26 as the peer computes them (probabilities, then log with float32-eps), summed over
    time and averaged over the batch."""
    import torch

    eps = float(torch.finfo(torch.float32).eps)
    d1 = (y[..., :1] - mu1) / s1
    d2 = (y[..., 1:2] - mu2) / s2
    om = 1 - rho**2
    z = d1**2 + d2**2 - 2 * rho * d1 * d2
    dens = torch.exp(-z / (2 * om)) / (2 * math.pi * s1 * s2 * om.sqrt())
    p = (pis * dens).sum(-1)
    e = y[..., 2]
    bern = e * es + (1 - e) * (1 - es)
    return (-torch.log(p + eps) - torch.log(bern + eps)).sum(0).mean()


# ----------------------------------------------------------------------------------------------------------
# Graves


def lstm_flops(B: int, T: int, inputs: list[int], H: int) -> float:
    """Forward matmul FLOPs of stacked LSTM layers (gate products only)."""
    return sum(2.0 * B * T * 4 * H * (i + H) for i in inputs)


def bench_graves(args: argparse.Namespace) -> dict:
    import torch

    from handwriting.models.graves import (
        GravesConfig,
        SynthesisNetwork,
        bf16_matmul_supported,
    )

    device = getattr(args, "device", "cpu")
    quick = getattr(args, "quick", False)
    repeats = max(1, getattr(args, "repeats", 3))
    warmup = max(0, getattr(args, "warmup", 1))
    if quick:
        B, T, U, A, H, L, M, K = 4, 40, 5, 70, 64, 3, 5, 3
        line_chars, ppc, batch_lines = 8, 10, 4
    else:
        B, T, U, A, H, L, M, K = 32, 300, 12, 70, 400, 3, 20, 10
        line_chars, ppc, batch_lines = 40, 25, 32
    notes = [
        f"shapes: batch {B} x {T} points, {L} x {H} LSTM, {M} mixtures, {K} window Gaussians, "
        f"{A} characters, text length {U}; one Adam step per timing (forward, loss, backward, clip, step)",
        "timings are medians of interleaved runs; on a shared machine compare the ratios, not absolute times",
    ]
    torch.manual_seed(0)
    x = torch.randn(B, T, 3, device=device)
    x[..., 2] = (torch.rand(B, T, device=device) < 0.05).float()
    text = torch.randint(1, A, (B, U), device=device)

    class _B:  # the Batch fields training_step reads
        pass

    batch = _B()
    batch.x, batch.x_mask, batch.text, batch.text_mask = x, torch.ones(B, T, dtype=torch.bool, device=device), text, text != 0

    def make_ours(precision):
        torch.manual_seed(0)
        model = SynthesisNetwork(GravesConfig(alphabet_size=A, hidden=H, layers=L, mixtures=M, window_mixtures=K, precision=precision)).to(device)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step():
            out = model.training_step(batch)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()

        return model, step

    fns: dict[str, Callable] = {}
    models = {}
    models["ours fp32"], fns["ours fp32"] = make_ours("fp32")
    models["ours bf16"], fns["ours bf16"] = make_ours("bf16")

    peer_cls = None if getattr(args, "no_peer", False) else load_pywritesmooth(getattr(args, "peer_path", None))
    if peer_cls is None and not getattr(args, "no_peer", False):
        notes.append("pywritesmooth not found, so no peer column; install it with: " + PEER_INSTALL)
    if peer_cls is not None:
        if device != "cpu":
            notes.append("pywritesmooth creates its state tensors on the CPU, so it is timed on the CPU only")
        else:
            torch.manual_seed(0)
            peer = peer_cls(hidden_size=H, n_gaussians=M, Kmixtures=K, alphabet_size=A)
            peer_opt = torch.optim.Adam(peer.parameters(), lr=0.005)
            xt = x.transpose(0, 1).contiguous()
            yt = torch.roll(xt, -1, 0)
            onehot = torch.nn.functional.one_hot(text, A).float()

            def peer_step():
                out = peer(xt, onehot)
                loss = _peer_loss(yt, *out)
                peer_opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(peer.parameters(), 10)
                peer_opt.step()

            fns["pywritesmooth"] = peer_step

    peaks = {
        "fp32": matmul_peak(torch.float32, 1024 if quick else 2048, repeats, device),
        "bf16": matmul_peak(torch.bfloat16, 1024 if quick else 2048, repeats, device),
    }
    times = interleaved(fns, repeats, warmup, device)

    ours_flops = 3 * (lstm_flops(B, T, [3 + A] + [3 + A + H] * (L - 1), H) + 2.0 * B * T * L * H * (1 + 6 * M))
    peer_flops = 3 * (lstm_flops(B, T, [3 + A] + [3 + A + H] * (L - 1), H) + 2.0 * B * T * H * (1 + 6 * M))
    rows = []
    peer_t = statistics.median(times["pywritesmooth"]) if "pywritesmooth" in times else None
    for name, ts in times.items():
        t = statistics.median(ts)
        flops = peer_flops if name == "pywritesmooth" else ours_flops
        peak = peaks["bf16" if name.endswith("bf16") else "fp32"]
        rows.append(
            {
                "training step": name,
                "ms/step": 1e3 * t,
                "min ms": 1e3 * min(ts),
                "points/s": B * T / t,
                "GFLOP/s": flops / t / 1e9,
                "% of matmul peak": 100 * flops / t / 1e9 / peak,
                "x pywritesmooth": (peer_t / t) if peer_t else float("nan"),
            }
        )
    result: dict[str, Any] = {
        "shapes": {"batch": B, "points": T, "text": U, "alphabet": A, "hidden": H, "layers": L, "mixtures": M, "window": K},
        "matmul_peak_gflops": peaks,
        "model_gflop_per_step": {"ours": ours_flops / 1e9, "pywritesmooth": peer_flops / 1e9},
        "train_seconds": times,
        "table": rows,
        "bf16_native": bf16_matmul_supported(device),
    }
    notes.append(
        f"matmul peak in this run: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s"
        + ("" if bf16_matmul_supported(device) else " (no native bf16 here: bf16 is emulated and slower)")
    )
    notes.append("GFLOP/s counts the LSTM gate and output-layer matmuls of each model (x3 for forward + backward)")

    if not getattr(args, "no_sampling", False):
        model = models["ours fp32"].eval()
        steps = line_chars * ppc
        line = torch.randint(1, A, (1, line_chars), device=device)
        lines = torch.randint(1, A, (batch_lines, line_chars), device=device)
        samp = interleaved(
            {
                "one": lambda: model.sample(line, bias=1.0, seed=0, points_per_char=ppc, stop=False),
                "batch": lambda: model.sample(lines, bias=1.0, seed=0, points_per_char=ppc, stop=False),
            },
            repeats,
            warmup,
            device,
        )
        t1, tb = statistics.median(samp["one"]), statistics.median(samp["batch"])
        result["sample_seconds"] = samp
        result["table_sampling"] = [
            {"sampling": f"1 line of {line_chars} chars ({steps} points)", "seconds": t1, "points/s": steps / t1, "ms/point": 1e3 * t1 / steps},
            {"sampling": f"{batch_lines} lines of {line_chars} chars at once", "seconds": tb, "points/s": batch_lines * steps / tb, "ms/point": 1e3 * tb / steps},
        ]
        notes.append(f"sampling runs a fixed {ppc} points per character (window stop rule off), fp32, inference mode")
    result["notes"] = notes
    return result


if __name__ == "__main__":
    sys.exit(main(["graves", *sys.argv[1:]]))
