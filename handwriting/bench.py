"""Speed benchmarks, side by side with the peers, measured in one run (ratios are what to compare).

``handwriting bench graves`` times one Adam training step of our synthesis network (fp32 and bf16) next to
pywritesmooth's ``HandwritingSynthesisModel`` (PyPI ``pywritesmooth`` 0.9.2, MIT) at the same shapes, the
achieved GFLOP/s against a matmul peak measured in the same run, and sampling speed (a 40-character line
at batch 1, and 32 lines at once).  ``handwriting bench transformer`` runs the transformer benchmark,
``handwriting bench all`` everything.  ``--json PATH`` writes the numbers.

The peer is only needed for the comparison and is not a dependency of the course.  Install it on its own,
without its (heavy) dependencies, e.g.::

    python -m pip install --no-deps --target /tmp/bench-peer pywritesmooth==0.9.2
    handwriting bench graves --peer-path /tmp/bench-peer
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

from ._alloc import allocator_setting, keep_freed_memory

EPILOG = """examples:
  handwriting bench graves                      # ours vs pywritesmooth, training + sampling
  handwriting bench graves --quick              # small shapes, a smoke test
  handwriting bench all --json build/bench.json
"""

# name -> "module:function"; each function takes the parsed args and returns a JSON-ready dict with at least
# a "table" entry (list of rows: dicts of column -> value) that run() prints.
BENCHES: dict[str, str] = {
    "graves": "handwriting.bench:bench_graves",
    "transformer": "handwriting.bench_transformer:bench_transformer",
    "panel": "handwriting.bench:bench_panel",
}

PEER_INSTALL = (
    "python -m pip install --no-deps --target /tmp/bench-peer pywritesmooth==0.9.2  "
    "(then pass --peer-path /tmp/bench-peer, or set HANDWRITING_BENCH_PEER)"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default="all", choices=[*BENCHES, "all"], help="what to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke test, not a measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer implementations")
    parser.add_argument("--peer-path", default=None, help="folder holding the pywritesmooth package")
    parser.add_argument("--no-sampling", action="store_true", help="skip the sampling measurements")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as it is (by default freed memory is kept for reuse, for "
                             "every contender alike: see handwriting/_alloc.py)")


def run(args: argparse.Namespace) -> int:
    import torch

    if not args.default_allocator:
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(BENCHES) if args.target == "all" else [args.target]
    results: dict[str, Any] = {"machine": machine_info(args.device)}
    print(_format_machine(results["machine"]))
    for name in names:
        fn = _resolve(name)
        if fn is None:
            print(f"\n[{name}] not available in this version (no {BENCHES[name]})")
            results[name] = {"available": False}
            continue
        print(f"\n[{name}]")
        res = fn(args)
        results[name] = res
        for table_name in [k for k in res if k.startswith("table")]:
            print(format_table(res[table_name]))
        for note in res.get("notes", []):
            print(f"  note: {note}")
    if args.json:
        from ._io import atomic_write

        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w") as f:
            json.dump(results, f, indent=2, default=_jsonable)
        print(f"\nwrote {path}")
    return 0


def _resolve(name: str) -> Callable | None:
    module_name, _, attr = BENCHES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("handwriting"):
            return None
        raise
    return getattr(module, attr, None)


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


# ----------------------------------------------------------------------------------------------------------
# helpers shared by the benchmarks


def machine_info(device: str = "cpu") -> dict:
    import torch

    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "device": device,
        "allocator": allocator_setting(),
    }
    try:
        info["cpu_bf16_native"] = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        info["cpu_bf16_native"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _format_machine(m: dict) -> str:
    load = m.get("load_average")
    load_s = ", load " + "/".join(f"{x:.1f}" for x in load) if load else ""
    return (
        f"torch {m['torch']} on {m['processor']} ({m['cpu_count']} CPUs, {m['threads']} threads, "
        f"{m['cpu_capability']}, native bf16: {m.get('cpu_bf16_native')}{load_s}; allocator: {m.get('allocator')})"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
    )


def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: str = "cpu") -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1, device: str = "cpu", progress: bool = True
) -> dict:
    """Time several functions round-robin (so a noisy machine hurts them alike): name -> list of seconds.

    With ``progress`` each timing is also printed to stderr as it comes (a full run takes minutes)."""
    for _ in range(warmup):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync(device)
            if progress:
                print(f"  warm-up {name}: {time.perf_counter() - t:.3f} s", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
            if progress:
                print(f"  run {r + 1}/{repeats} {name}: {times[name][-1]:.3f} s", file=sys.stderr, flush=True)
    return times


def matmul_peak(dtype, n: int = 2048, repeats: int = 3, device: str = "cpu") -> float:
    """GFLOP/s of an ``n³`` matmul (median)."""
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    t = statistics.median(timeit(lambda: a @ b, repeats, 1, device))
    return 2 * n**3 / t / 1e9


def format_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([line, sep, *body])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0 or math.isnan(v):
            return f"{v:g}"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    return str(v)


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

    from .models.graves import GravesConfig, SynthesisNetwork, bf16_matmul_supported

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


PANEL_TEXT = "the quick brown fox jumps over"  # 30 characters


def bench_panel(args: argparse.Namespace) -> dict:
    """The interactive panel's regeneration time for a 30-character line (design target: <= 1 s on 2 CPU
    cores with the Graves model): the whole ``Panel.regenerate`` (write + render to SVG), per bias and with
    a style (primed), medians of ``--repeats`` runs with a new seed each time."""
    import statistics

    from . import pretrained
    from .widgets import Panel

    names = [m["name"] for m in pretrained.list_pretrained()]
    model = pretrained.DEFAULT_MODEL if pretrained.DEFAULT_MODEL in names else "graves-synthesis-tiny"
    if model not in names:
        return {"available": False, "notes": [f"no pretrained Graves model installed ({pretrained.DEFAULT_MODEL})"]}
    text = PANEL_TEXT[:12] if args.quick else PANEL_TEXT
    panel = Panel(model, text=text, debounce=0, background=False)
    rows = []
    seed = 0
    for bias in (0.0, 1.0, 3.0):
        panel.bias.value = bias
        times = []
        for i in range(args.warmup + args.repeats):
            seed += 1
            panel.seed.value = seed
            t0 = time.perf_counter()
            panel.regenerate()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        rows.append({"what": f"regenerate {len(text)} characters, bias {bias:g}", "model": model,
                     "median s": statistics.median(times), "min s": min(times),
                     "target s": 1.0, "met": statistics.median(times) <= 1.0})
    return {
        "table": rows,
        "notes": [f"Panel(model={model!r}).regenerate() with the text {text!r}: write + SVG rendering, "
                  f"medians of {args.repeats} runs (new seed each), {args.warmup} warm-up"],
    }


def main(argv: list[str] | None = None) -> int:  # python -m handwriting.bench
    parser = argparse.ArgumentParser(prog="handwriting bench", description=__doc__.strip().split("\n\n")[0], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
