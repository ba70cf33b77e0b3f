"""Speed benchmarks, side by side with the peers, measured in one run (ratios are what to compare).

``handwriting bench graves`` times one Adam training step of our synthesis network (fp32 and bf16) next to
pywritesmooth's ``HandwritingSynthesisModel`` (PyPI ``pywritesmooth`` 0.9.2, MIT) at the same shapes, the
achieved GFLOP/s against a matmul peak measured in the same run, and sampling speed (a 40-character line
at batch 1, and 32 lines at once).  ``handwriting bench transformer`` runs the transformer benchmark,
``handwriting bench panel`` the interactive panel's regeneration time, ``handwriting bench all`` everything.
``--json PATH`` writes the numbers.

This module is the shared harness: the registry of benchmarks, the command line (``configure``, ``run``,
``main``; ``handwriting bench`` is a thin entry point into it), and the helpers the benchmarks use
(``machine_info``, ``timeit``, ``interleaved``, ``matmul_peak``, ``format_table``).  The benchmarks themselves
are ``bench_graves.py``, ``bench_transformer.py`` and ``bench_panel.py`` next to it, each also runnable as a
script from the repository root (``python benchmarks/bench_graves.py --quick``).

The peer is only needed for the comparison and is not a dependency of the course.  Install it on its own,
without its (heavy) dependencies, e.g.::

    python -m pip install --no-deps --target /tmp/bench-peer pywritesmooth==0.9.2
    handwriting bench graves --peer-path /tmp/bench-peer

Nothing heavy (torch) is imported here at module level: ``configure`` runs before any benchmark does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from handwriting._alloc import allocator_setting, keep_freed_memory

EPILOG = """examples:
  handwriting bench graves                      # ours vs pywritesmooth, training + sampling
  handwriting bench graves --quick              # small shapes, a smoke test
  handwriting bench all --json build/bench.json
"""

# name -> "module:function" (strings, so that listing the names imports nothing); each function takes the
# parsed args and returns a JSON-ready dict with at least a "table" entry (list of rows: dicts of column ->
# value) that run() prints.
BENCHES: dict[str, str] = {
    "graves": "benchmarks.bench_graves:bench_graves",
    "transformer": "benchmarks.bench_transformer:bench_transformer",
    "panel": "benchmarks.bench_panel:bench_panel",
}


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
        from handwriting._io import atomic_write

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
        if exc.name and exc.name.startswith(("handwriting", "benchmarks")):
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

def main(argv: list[str] | None = None) -> int:  # python benchmarks/harness.py [target] [options]
    parser = argparse.ArgumentParser(prog="handwriting bench", description=__doc__.strip().split("\n\n")[0], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `benchmarks.*`
    raise SystemExit(main())
