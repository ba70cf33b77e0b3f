"""The repository's packaging promises: dependencies agree, notebooks are committed clean, the two README
commands and the CI script are what the course says they are."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# pip name -> conda-forge name, where they differ
PIP_TO_CONDA = {"torch": "pytorch", "graphviz": "python-graphviz"}
# conda entries that are not Python packages of pyproject (the interpreter, pip, system libraries)
CONDA_ONLY = {"python", "pip", "cairo", "graphviz"}
# pip-only packages (not on conda-forge): they must sit under the `pip:` section of environment.yml
PIP_SECTION = {"hershey-fonts"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split_req(req: str) -> tuple[str, str]:
    """'torch>=2.3' -> ('torch', '>=2.3'); conda's 'pytorch>=2.3' and 'python=3.11' alike."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$", req)
    assert m, f"cannot parse requirement {req!r}"
    return _norm(m.group(1)), m.group(2).split(";")[0].replace(" ", "")


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment() -> tuple[dict[str, str], dict[str, str]]:
    """(conda packages, pip-section packages) of environment.yml, each name -> version spec."""
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for req in dep.get("pip", []):
                name, spec = _split_req(req)
                pip[name] = spec
        else:
            name, spec = _split_req(str(dep))
            conda[name] = spec
    return conda, pip


def test_pyproject_and_environment_yml_agree():
    project = _pyproject()["project"]
    deps = dict(_split_req(r) for r in project["dependencies"])
    test_extras = {_split_req(r)[0] for r in project.get("optional-dependencies", {}).get("test", [])}
    conda, pip = _environment()

    # every pyproject dependency is in environment.yml, under its conda name or in the pip: section
    for name, spec in deps.items():
        if name in PIP_SECTION:
            assert name in pip, f"{name} is pip-only: list it under `- pip:` in environment.yml"
            assert name not in conda, f"{name} is not on conda-forge: move it under `- pip:` in environment.yml"
            got = pip[name]
        else:
            cname = PIP_TO_CONDA.get(name, name)
            assert cname in conda or name in pip, (
                f"pyproject dependency {name!r} is missing from environment.yml (conda name {cname!r})")
            got = conda.get(cname, pip.get(name))
        assert got == spec, f"{name}: pyproject says {spec!r} but environment.yml says {got!r}; keep them equal"

    # and environment.yml has nothing pyproject lacks (besides python, pip, system libraries, test tools)
    conda_to_pip = {v: k for k, v in PIP_TO_CONDA.items()}
    for cname in conda:
        name = conda_to_pip.get(cname, cname)
        if cname in CONDA_ONLY or cname in test_extras:
            continue
        assert name in deps, f"environment.yml lists {cname!r}, which pyproject.toml's dependencies lack"
    for name in pip:
        assert name in deps or name in test_extras, (
            f"environment.yml's pip: section lists {name!r}, which pyproject.toml's dependencies lack")


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks committed yet")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), (
        f"{path.name}: name notebooks NN_lower_case_words.ipynb so the course runner orders them")
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4, f"{path.name}: expected nbformat 4"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        first = "".join(cell["source"]).strip().splitlines()[:1]
        assert not cell.get("outputs"), f"{path.name}: cell {i} {first} has outputs; clear them before committing"
        assert cell.get("execution_count") is None, (
            f"{path.name}: cell {i} {first} has an execution count; clear outputs before committing")
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged `parameters`, found {len(tagged)}"
    source = "".join(tagged[0]["source"])
    assert tagged[0]["cell_type"] == "code" and re.search(r"^QUICK\s*=", source, re.M), (
        f"{path.name}: the `parameters` cell must be code that sets QUICK (QUICK = False)")


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks committed yet")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_installs_the_package_on_a_hosted_runtime_and_picks_a_gpu(path: Path, monkeypatch):
    """The first code cell fetches and installs the course where the package is missing (Colab, Kaggle), does
    nothing where it is installed, and says what to do when it does not know where the course lives."""
    import importlib.util
    import subprocess

    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    setup = "".join(code[0]["source"])
    assert "setup" in code[0].get("metadata", {}).get("tags", []) and "COURSE_REPO" in setup, (
        f"{path.name}: the first code cell must be the hosted-runtime setup cell (tagged `setup`)")
    assert "parameters" in code[1].get("metadata", {}).get("tags", []), f"{path.name}: the parameters cell comes next"
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    exec(compile(setup, f"{path.name}:setup", "exec"), {})  # the package is importable here: nothing happens
    assert ran == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(RuntimeError, match="COURSE_REPO"):
        exec(compile(setup, f"{path.name}:setup", "exec"), {})
    assert ran == []
    with_repo = setup.replace('COURSE_REPO = ""', 'COURSE_REPO = "https://example.invalid/course.git"')
    exec(compile(with_repo, f"{path.name}:setup", "exec"), {})
    assert ran[0][0][:2] == ["git", "clone"] and "https://example.invalid/course.git" in ran[0][0]
    assert ran[1][0][1:4] == ["-m", "pip", "install"]
    params = "".join(code[1]["source"])
    if re.search(r"^DEVICE\s*=", params, re.M):
        assert "torch.cuda.is_available()" in params, f"{path.name}: DEVICE should pick the GPU when there is one"


def test_readme_starts_with_the_two_commands():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md not written yet")
    blocks = re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip().lstrip("$ ").strip()
            if line and not line.startswith(("git clone", "cd ")):
                commands.append(line)
    assert commands[:2] == ["make course", "make test"], (
        f"README.md's first commands should be `make course` then `make test`, found {commands[:2]}")


def test_cli_help_works():
    out = subprocess.run([sys.executable, "-m", "handwriting", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "course" in out.stdout and "usage" in out.stdout.lower()
    out = subprocess.run([sys.executable, "-m", "handwriting", "course", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "--only" in out.stdout and "--full" in out.stdout


def test_ci_runs_make_test_with_a_pinned_cpu_torch():
    script = (ROOT / ".ci" / "run").read_text()
    lines = [ln.split("#", 1)[0] for ln in script.splitlines()]
    make = [ln for ln in lines if re.search(r"\bmake\b.*\btest\b", ln)]
    assert make, ".ci/run must run the README's test command, `make test`"
    pin = re.search(r"TORCH_SPEC=[\"']?torch==([0-9][0-9.]*)", script)
    assert pin, ".ci/run must pin PyTorch, e.g. make test TORCH_SPEC=torch==2.13.0"
    assert "torch.version.cuda is None" in script, (
        ".ci/run must check that the installed PyTorch is the CPU build, not the multi-GB CUDA wheels")
    default = re.search(r"^TORCH_SPEC\s*\?=\s*torch==([0-9][0-9.]*)", (ROOT / "Makefile").read_text(), re.M)
    if default:
        assert default.group(1) == pin.group(1), (
            f".ci/run pins torch {pin.group(1)} but the Makefile's default is {default.group(1)}; keep them equal")


def test_bench_runs_the_clones_benchmarks_and_says_so_without_a_clone(tmp_path, monkeypatch, capsys):
    """The benchmarks are not in the package: `handwriting bench` imports them from the repository's benchmarks/."""
    import handwriting
    from handwriting.cli import _import, main

    assert _import("benchmarks.harness").__name__ == "benchmarks.harness"
    fake = tmp_path / "site" / "handwriting" / "__init__.py"  # an installed wheel: no benchmarks/ beside it
    monkeypatch.setattr(handwriting, "__file__", str(fake))
    assert main(["bench", "graves"]) == 2
    err = capsys.readouterr().err
    assert "not part of the installed package" in err and "clone" in err and "Traceback" not in err
