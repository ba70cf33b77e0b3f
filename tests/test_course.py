"""The course runner (`handwriting course`) on throwaway notebooks: QUICK is injected, executed copies, HTML
and figures land where promised, and a failing cell is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook  # noqa: E402

from handwriting import course  # noqa: E402


def _notebook(path: Path, *sources: str) -> Path:
    params = new_code_cell("QUICK = False")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# a throwaway notebook"), params]
                      + [new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _course(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handwriting", "course", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture
def course_dir(tmp_path: Path) -> Path:
    nbs = tmp_path / "notebooks"
    _notebook(nbs / "01_fine.ipynb",
              "import os, matplotlib\nprint('QUICK is', QUICK, 'backend', matplotlib.get_backend())\n"
              "print('cwd', os.getcwd())",
              "import matplotlib.pyplot as plt\nfrom handwriting.notebook_utils import save_figure\n"
              "fig, ax = plt.subplots()\nax.plot([0, 1], [1, 0])\nsave_figure(fig, 'tiny_line.png');")
    _notebook(nbs / "02_broken.ipynb",
              "x = 1",
              "y = x + 1  # the line the report names\nraise RuntimeError('deliberate failure')",
              "z = 3")
    (nbs / "scratch.ipynb").write_text("not a course notebook: no NN_ prefix, never run")
    return tmp_path


def test_runs_notebooks_injects_quick_and_names_the_failing_cell(course_dir: Path):
    out = _course("--notebooks", str(course_dir / "notebooks"), cwd=course_dir)
    assert out.returncode == 1, out.stdout + out.stderr

    built = course_dir / "build" / "course"
    for name in ("01_fine", "02_broken"):
        assert (built / f"{name}.ipynb").is_file(), f"no executed copy of {name}"
        assert (built / f"{name}.html").is_file(), f"no HTML of {name}"
    assert not (built / "scratch.ipynb").exists()

    executed = nbformat.read(str(built / "01_fine.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "QUICK is True" in text
    assert "backend_inline" in text  # headless, and figures still land in the outputs
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the figure should be in the executed notebook"
    assert f"cwd {course_dir / 'notebooks'}" in text  # each notebook runs in its own folder, as in Jupyter
    assert (course_dir / "figures" / "tiny_line.png").is_file()  # figures/ beside notebooks/
    html = (built / "01_fine.html").read_text(encoding="utf-8")
    assert "QUICK is True" in html and "data:image/png;base64" in html

    assert "01_fine" in out.stdout and "02_broken" in out.stdout and "seconds" in out.stdout
    err = out.stderr
    assert "02_broken.ipynb" in err
    assert "cell 3" in err and "y = x + 1" in err  # index in the committed notebook + its first line
    assert "RuntimeError: deliberate failure" in err


def test_only_full_and_out(course_dir: Path, tmp_path: Path):
    out_dir = tmp_path / "elsewhere"
    out = _course("--notebooks", str(course_dir / "notebooks"), "--only", "1", "--full", "--no-html",
                  "--out", str(out_dir), cwd=course_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (out_dir / "01_fine.ipynb").is_file() and not (out_dir / "02_broken.ipynb").exists()
    assert not (out_dir / "01_fine.html").exists()
    executed = nbformat.read(str(out_dir / "01_fine.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "QUICK is False" in text


def test_find_notebooks_and_parameters(tmp_path: Path):
    for name in ("01_a.ipynb", "02_b.ipynb", "10_c.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in course.find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in course.find_notebooks(tmp_path, "10,1")] == ["01_a.ipynb", "10_c.ipynb"]
    assert [p.name for p in course.find_notebooks(tmp_path, "02_b")] == ["02_b.ipynb"]
    with pytest.raises(SystemExit, match="no notebook matches '7'"):
        course.find_notebooks(tmp_path, "7")
    assert course._parse_parameters(["device=cuda", "steps=5", "name='x'"]) == {
        "device": "cuda", "steps": 5, "name": "x"}
    with pytest.raises(SystemExit):
        course._parse_parameters(["no-equals"])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="checks the kernel process through Linux /proc")
def test_a_notebook_that_never_finishes_is_killed_with_its_kernel(tmp_path: Path):
    nbs = tmp_path / "notebooks"
    pid_file = tmp_path / "kernel.pid"
    _notebook(nbs / "01_stuck.ipynb",
              f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))",
              "import time\ntime.sleep(3600)  # never returns")
    _notebook(nbs / "02_after.ipynb", "print('the course goes on')")
    out = _course("--notebooks", str(nbs), "--notebook-timeout", "15", "--timeout", "0", "--no-html", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "01_stuck.ipynb" in out.stderr and "cell 3 (`import time`)" in out.stderr
    assert "--notebook-timeout 15 s" in out.stderr
    assert "02_after" in out.stdout and "ok" in out.stdout.split("02_after")[1].splitlines()[0]
    kernel = int(pid_file.read_text())
    for _ in range(50):  # killed with the runner, not left behind sleeping
        if not _alive(kernel):
            break
        import time

        time.sleep(0.1)
    assert not _alive(kernel)
