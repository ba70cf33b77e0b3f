"""Execute the course notebooks headless, in order, in QUICK mode, into executed copies and HTML.

Every ``notebooks/NN_*.ipynb`` runs with papermill, which injects ``QUICK = True`` (``--full``: ``False``)
after the notebook's cell tagged ``parameters``.  Each notebook runs with its own folder as the working
directory (as in Jupyter) on a kernel that is this very interpreter, headless: matplotlib uses the inline
backend (Agg rendering into the notebook's outputs, no display needed), and figures saved with
:func:`handwriting.notebook_utils.save_figure` go to ``<repo>/figures/``.  The executed notebooks and their HTML go to ``build/course/``.
A failure names the notebook, the cell (its index and first line) and the error, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

EPILOG = """examples:
  handwriting course                      every notebook, QUICK mode
  handwriting course --only 01,02         just notebooks 01 and 02
  handwriting course --full --timeout 0   the full course, no time limit per cell
  handwriting course -p device=cuda       an extra notebook parameter (a Python literal or a string)
"""

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
KERNEL_NAME = "python3"


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    executed: Path | None = None
    html: Path | None = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)


def _default_root() -> Path:
    """The checkout: the current directory if it holds notebooks/, else the package's parent."""
    cwd = Path.cwd()
    if (cwd / "notebooks").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", default=None, metavar="NN[,NN...]",
                        help="run only these notebooks, by number or name prefix (e.g. 01,02 or 03_handwriting)")
    parser.add_argument("--full", action="store_true", help="run with QUICK = False (the full-length course)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="time limit per cell (default 600; 0 = none)")
    parser.add_argument("--notebook-timeout", type=float, default=None, metavar="SECONDS",
                        help="time limit per whole notebook, after which it is killed with its kernel (default "
                             "1800 in QUICK mode, none with --full; 0 = none)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where executed notebooks and HTML go (default <repo>/build/course)")
    parser.add_argument("--notebooks", type=Path, default=None, metavar="DIR",
                        help="folder of NN_*.ipynb notebooks (default <repo>/notebooks)")
    parser.add_argument("--figures", type=Path, default=None, metavar="DIR",
                        help="where notebooks save figures (default: figures/ beside the notebooks folder)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra parameter injected into every notebook (repeatable)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing notebook")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML export")


# ----------------------------------------------------------------------------------------------------------
# selecting notebooks


def find_notebooks(folder: Path, only: str | None = None) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks of ``folder`` in order, optionally filtered by ``only`` ("01,02")."""
    notebooks = sorted(p for p in folder.glob(NOTEBOOK_GLOB) if p.is_file())
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = []
    for w in wanted:
        key = w.zfill(2) if w.isdigit() else w
        hits = [p for p in notebooks if p.stem == key or p.stem.startswith(key + "_") or p.name == key
                or (not key.isdigit() and p.stem.startswith(key))]
        if not hits:
            names = ", ".join(p.stem for p in notebooks) or "none"
            raise SystemExit(f"handwriting course: no notebook matches {w!r} in {folder} (found: {names})")
        chosen += [h for h in hits if h not in chosen]
    return sorted(chosen)


def _parse_parameters(items: list[str]) -> dict:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise SystemExit(f"handwriting course: --parameter expects NAME=VALUE, got {item!r}")
        try:
            params[name.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name.strip()] = value
    return params


# ----------------------------------------------------------------------------------------------------------
# the kernel: this interpreter, whatever kernelspecs the user has


@contextlib.contextmanager
def _private_kernelspec():
    """A ``python3`` kernelspec pointing at ``sys.executable``, first on ``JUPYTER_PATH`` while we run.

    A fresh .venv then runs its notebooks on itself even if the user has another ``python3`` kernel
    registered in ~/.local/share/jupyter.
    """
    with tempfile.TemporaryDirectory(prefix="handwriting-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": False, "supported_encryption": ["curve"]},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = tmp + (os.pathsep + old if old else "")
        try:
            yield KERNEL_NAME
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


@contextlib.contextmanager
def _environ(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------------------------------
# running one notebook


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:100]
    return "(empty cell)"


def _describe_failure(nb_path: Path, executed: Path, exc: BaseException) -> str:
    """'cell 7 (`first line`): Error: message' — the index in the notebook as committed."""
    import nbformat

    original = nbformat.read(nb_path, as_version=4)
    source = getattr(exc, "source", None)
    cell_id = None
    if executed.exists():
        with contextlib.suppress(Exception):
            out = nbformat.read(executed, as_version=4)
            failed = [c for c in out.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
            if failed:  # an exception: the cell whose output is the error
                source, cell_id = failed[-1].source, failed[-1].get("id")
            elif source is None:  # a timeout or a dead kernel: the last cell that started
                started = [c for c in out.cells if c.get("metadata", {}).get("papermill", {}).get("start_time")]
                if started:
                    source, cell_id = started[-1].source, started[-1].get("id")
    index = next((i for i, c in enumerate(original.cells) if cell_id is not None and c.get("id") == cell_id), None)
    if index is None:
        index = next((i for i, c in enumerate(original.cells) if source is not None and c.source == source), None)
    where = f"cell {index} (`{_first_line(original.cells[index].source)}`)" if index is not None else "a cell"
    if hasattr(exc, "ename"):
        what = f"{exc.ename}: {exc.evalue}"
    else:
        what = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return f"{where}: {what}"


def _has_parameters_cell(nb_path: Path) -> bool:
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def _export_html(executed: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    from ._io import atomic_write
    from .notebook_utils import _readable

    nb = nbformat.read(executed, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    with atomic_write(html, "w", encoding="utf-8") as f:
        f.write(body)
    _readable(html)


def _kernel_manager_class():
    """nbclient's kernel manager, asking for CurveZMQ transport encryption where pyzmq has it (newer
    jupyter_client); this also keeps the kernel from warning about plain TCP on every start."""
    from jupyter_client.manager import AsyncKernelManager

    if "transport_encryption" not in AsyncKernelManager.class_trait_names():
        return AsyncKernelManager
    import zmq

    if not zmq.has("curve"):
        return AsyncKernelManager

    class EncryptedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport_encryption", "auto")
            super().__init__(**kwargs)

    return EncryptedKernelManager


def _execute(nb_path: Path, executed: Path, parameters: dict, kernel_name: str, timeout: float | None) -> str:
    """Run one notebook with papermill; '' on success, else where and what failed."""
    import logging

    import papermill

    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        papermill.execute_notebook(
            str(nb_path), str(executed), parameters=parameters, kernel_name=kernel_name, language="python",
            progress_bar=False, cwd=str(nb_path.parent), start_timeout=180,
            execution_timeout=timeout if timeout else None, kernel_manager_class=_kernel_manager_class(),
        )
        return ""
    except Exception as exc:  # noqa: BLE001 — every failure is reported with its notebook and cell
        return _describe_failure(nb_path, executed, exc) or f"{type(exc).__name__}"


def _execute_child(conn, *args) -> None:  # the forked process: run, send the verdict, exit
    try:
        conn.send(_execute(*args))
    except BaseException as exc:  # noqa: BLE001
        conn.send(f"the runner itself failed: {type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux ``/proc``; empty elsewhere): the kernel a runner started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _execute_guarded(nb_path: Path, executed: Path, parameters: dict, kernel_name: str, timeout: float | None,
                     notebook_timeout: float | None) -> str:
    """:func:`_execute` in a forked process that is killed, with its kernel, after ``notebook_timeout``
    seconds: a kernel that never answers (or never shuts down) becomes a loud failure, not a hung course."""
    import multiprocessing as mp
    import signal

    if not notebook_timeout or "fork" not in mp.get_all_start_methods():
        return _execute(nb_path, executed, parameters, kernel_name, timeout)
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_execute_child, args=(send, nb_path, executed, parameters, kernel_name, timeout),
                       daemon=True)
    proc.start()
    send.close()
    verdict = None
    if recv.poll(notebook_timeout):
        with contextlib.suppress(EOFError):
            verdict = recv.recv()
    proc.join(30 if verdict is not None else 0)
    if proc.is_alive():  # no verdict in time, or stuck shutting its kernel down after one
        for pid in _descendants(proc.pid) + [proc.pid]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        proc.join(10)
    if verdict is None:
        where = _describe_failure(nb_path, executed, TimeoutError(f"no result after {notebook_timeout:.0f} s"))
        return (f"{where} (the whole notebook ran past --notebook-timeout {notebook_timeout:.0f} s and was "
                "killed with its kernel; raise the limit, or --notebook-timeout 0 for none)")
    return verdict


def run_notebook(nb_path: Path, out_dir: Path, parameters: dict, kernel_name: str, timeout: float | None,
                 html: bool = True, notebook_timeout: float | None = None) -> Result:
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / nb_path.name
    result = Result(name=nb_path.stem, ok=False, seconds=0.0, executed=executed)
    if not _has_parameters_cell(nb_path):
        result.warnings.append("no cell tagged `parameters`: papermill put QUICK at the top")
    t0 = time.perf_counter()
    result.error = _execute_guarded(nb_path, executed, parameters, kernel_name, timeout, notebook_timeout)
    result.ok = not result.error
    result.seconds = time.perf_counter() - t0
    if html and executed.exists():
        result.html = out_dir / (nb_path.stem + ".html")
        try:
            _export_html(executed, result.html)
        except Exception as exc:  # noqa: BLE001
            result.warnings.append(f"HTML export failed: {type(exc).__name__}: {exc}")
            result.html = None
    return result


# ----------------------------------------------------------------------------------------------------------
# the command


def _table(results: list[Result]) -> str:
    width = max([len(r.name) for r in results] + [len("notebook")])
    lines = [f"{'notebook':<{width}}  {'status':<6}  {'seconds':>8}", "-" * (width + 18)]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:8.1f}")
    lines.append("-" * (width + 18))
    lines.append(f"{'total':<{width}}  {sum(r.ok for r in results):>2}/{len(results):<3}  "
                 f"{sum(r.seconds for r in results):8.1f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    root = _default_root()
    nb_dir = (args.notebooks or root / "notebooks").resolve()
    if not nb_dir.is_dir():
        print(f"handwriting course: no notebooks folder at {nb_dir}; pass --notebooks DIR", file=sys.stderr)
        return 2
    base = nb_dir.parent
    out_dir = (args.out or base / "build" / "course").resolve()
    fig_dir = (args.figures or base / "figures").resolve()
    notebooks = find_notebooks(nb_dir, args.only)
    if not notebooks:
        print(f"handwriting course: no {NOTEBOOK_GLOB} notebooks in {nb_dir}", file=sys.stderr)
        return 2
    quick = not args.full
    parameters = {"QUICK": quick, **_parse_parameters(args.parameter)}
    notebook_timeout = getattr(args, "notebook_timeout", None)
    if notebook_timeout is None:
        notebook_timeout = 1800.0 if quick else 0.0
    print(f"== {len(notebooks)} notebook(s) from {nb_dir}, QUICK={quick}, kernel {sys.executable}")
    print(f"== executed copies and HTML -> {out_dir}; figures -> {fig_dir}", flush=True)

    results: list[Result] = []
    # Agg rendering without a display; the inline flavour also puts every figure into the executed notebook
    # (plain "Agg" would draw nothing into the outputs, leaving the HTML without figures)
    env = {
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "HANDWRITING_FIGURES": str(fig_dir),
        "HANDWRITING_QUICK": "1" if quick else "0",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    if (base / "handwriting" / "__init__.py").is_file():  # notebooks import this checkout's package
        env["PYTHONPATH"] = os.pathsep.join([str(base)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    cwd = os.getcwd()
    try:
        with _environ(**env), _private_kernelspec() as kernel:
            for nb in notebooks:
                print(f"-- {nb.name} ...", end=" ", flush=True)
                r = run_notebook(nb, out_dir, parameters, kernel, args.timeout, html=not args.no_html,
                                 notebook_timeout=notebook_timeout)
                results.append(r)
                print(f"{'ok' if r.ok else 'FAILED'} in {r.seconds:.1f} s", flush=True)
                for w in r.warnings:
                    print(f"   warning: {w}", flush=True)
                if not r.ok:
                    print(f"   {nb.name}: {r.error}", file=sys.stderr, flush=True)
                    if args.fail_fast:
                        break
    finally:
        os.chdir(cwd)

    print()
    print(_table(results))
    failed = [r for r in results if not r.ok]
    if failed:
        print(file=sys.stderr)
        for r in failed:
            print(f"FAILED {r.name}.ipynb, {r.error}\n  executed copy: {r.executed}", file=sys.stderr)
        return 1
    return 0
