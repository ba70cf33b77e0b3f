"""Speed benchmarks, side by side with the peers, measured in one run (ratios are what to compare).

``handwriting bench graves | transformer | panel | all`` runs the benchmarks that live in the repository's
``benchmarks/`` folder (not in the package): this module only finds that folder next to the installed
package (an editable install from a clone) and hands over to ``benchmarks/harness.py``.  Nothing is
imported from there, and nothing heavy at all, until the command runs, so ``handwriting --help`` stays
instant.  See ``benchmarks/README.md`` for what is measured and how to install the peers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import HandwritingError

EPILOG = """examples:
  handwriting bench graves                      # ours vs pywritesmooth, training + sampling
  handwriting bench graves --quick              # small shapes, a smoke test
  handwriting bench all --json build/bench.json
"""


def benchmarks_dir() -> Path:
    """``<repository root>/benchmarks``, next to the package (it exists in a clone, not in a wheel)."""
    import handwriting

    return Path(handwriting.__file__).resolve().parents[1] / "benchmarks"


def _harness():
    """The module ``benchmarks.harness`` of this repository; a HandwritingError without a clone."""
    folder = benchmarks_dir()
    if not (folder / "harness.py").is_file():
        raise HandwritingError(
            f"the benchmarks are not part of the installed package: they live in the repository's benchmarks/ "
            f"folder (no {folder / 'harness.py'} here); run them from a clone of the repository, installed "
            f"with `python -m pip install -e .` (then `handwriting bench ...` or `python benchmarks/bench_graves.py`)"
        )
    root = str(folder.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module("benchmarks.harness")
    if Path(module.__file__).resolve().parent != folder:
        raise HandwritingError(
            f"`import benchmarks` found {Path(module.__file__).resolve().parent}, not this repository's {folder}: "
            f"another package called `benchmarks` shadows it; run `python {folder / 'bench_graves.py'}` instead"
        )
    return module


def configure(parser: argparse.ArgumentParser) -> None:
    try:
        harness = _harness()
    except HandwritingError:  # no clone: accept anything, and let run() say why nothing can be measured
        parser.add_argument("target", nargs="?", default="all", help="what to time (needs a clone: see run)")
        parser.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    harness.configure(parser)


def run(args: argparse.Namespace) -> int:
    return _harness().run(args)


def main(argv: list[str] | None = None) -> int:  # python -m handwriting.bench
    from .cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
