"""The ``handwriting`` command (also ``python -m handwriting``).

Each sub-command lives in its own module, which provides ``configure(parser)`` and ``run(args) -> int``;
only the module of the command being run is imported, so ``handwriting --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import HandwritingError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "write": ("handwriting.generate", "write text in handwriting to .svg/.png/.gif/.gcode"),
    "page": ("handwriting.generate_page", "write a text file as a page of handwriting"),
    "models": ("handwriting.pretrained", "list the pretrained models shipped with the course"),
    "train": ("handwriting.train", "train a model (graves, transformer, mdn-transformer, recognizer)"),
    "evaluate": ("handwriting.evaluate", "likelihood and legibility of a model"),
    "style": ("handwriting.style_fit", "fit a style file to your handwriting samples (your hand in five minutes)"),
    "data": ("handwriting.datasets.download", "download or locate data sets (bigbank, synthbank)"),
    "bench": ("benchmarks.harness", "speed benchmarks, side by side with the peers (a clone's benchmarks/)"),
    "course": ("handwriting.course", "execute every notebook headless (QUICK mode) into build/course/"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: handwriting COMMAND [options]   (handwriting COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "examples:", '  handwriting write "hello world" --bias 1.5 -o hello.svg', "  handwriting models"]
    return "\n".join(lines)


def _import(module_name: str):
    """A command's module.  The benchmarks are not in the package: ``benchmarks.*`` is imported from the
    ``benchmarks/`` folder of the clone the package is installed from (an editable install)."""
    if module_name.startswith("benchmarks."):
        import handwriting

        folder = Path(handwriting.__file__).resolve().parents[1] / "benchmarks"
        if not (folder / "harness.py").is_file():
            raise HandwritingError(
                f"the benchmarks are not part of the installed package: they live in the repository's benchmarks/ "
                f"folder (no {folder / 'harness.py'} here); run them from a clone installed with "
                "`python -m pip install -e .` (then `handwriting bench ...` or `python benchmarks/bench_graves.py`)"
            )
        if str(folder.parent) not in sys.path:
            sys.path.insert(0, str(folder.parent))
        module = importlib.import_module(module_name)
        if Path(module.__file__).resolve().parent != folder:
            raise HandwritingError(f"`import benchmarks` found {Path(module.__file__).resolve().parent}, not this "
                                   f"repository's {folder}; run `python {folder / 'bench_graves.py'}` instead")
        return module
    return importlib.import_module(module_name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"handwriting: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    try:
        module = _import(module_name)  # a broken module of the package fails loudly
    except HandwritingError as exc:
        print(f"handwriting {name}: error: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog=f"handwriting {name}",
        description=(module.__doc__ or help_).strip().split("\n\n")[0],
        epilog=getattr(module, "EPILOG", None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except HandwritingError as exc:
        code = getattr(exc, "exit_code", 2)  # an interruption that saved its work is not an error
        print(f"handwriting {name}: {'error: ' if code == 2 else ''}{exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"handwriting {name}: interrupted", file=sys.stderr)
        return 130
