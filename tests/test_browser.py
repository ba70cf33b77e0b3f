"""The quickstart notebook in a real browser: JupyterLab (headless, on localhost) driven by Playwright.

Starts JupyterLab on a free port with token authentication in a temporary folder holding a copy of
``notebooks/00_quickstart.ipynb``, opens it in Chromium, runs all cells, drags the panel's bias slider and
checks that the handwriting the panel draws changes (screenshots of the drawing before and after).

Needs the ``playwright`` Python package and a Chromium binary — Debian's ``chromium`` package
(``apt-get install -y chromium``; ``scripts/sysdeps.sh`` installs it as root) or the one named by
``$HANDWRITING_CHROMIUM``.  Playwright's own browser download (``playwright install``) is not used.  Skipped
with the reason when either is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_quickstart.ipynb"
TIMEOUT_MS = 90_000  # generous: the machine may be busy (training runs share the CPU)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _chromium() -> str | None:
    env = os.environ.get("HANDWRITING_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _writer_model() -> tuple[str, str]:
    """(model, text) for the notebook: the shipped bigbank model, else the tiny one (whose alphabet has no space)."""
    from handwriting.pretrained import DEFAULT_MODEL, PretrainedError, find_pretrained

    for name, text in ((DEFAULT_MODEL, "hello browser"), ("graves-synthesis-tiny", "hello")):
        try:
            if find_pretrained(name).is_file():
                return name, text
        except PretrainedError:
            continue
    pytest.skip("no pretrained synthesis model is installed (data/pretrained); the quickstart needs one")


def _prepare(workdir: Path, model: str, text: str) -> Path:
    """A copy of notebook 00 with QUICK, MODEL and TEXT set in its parameters cell."""
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "notebook 00 needs exactly one cell tagged `parameters`"
    src = "".join(params[0]["source"])
    src = re.sub(r"^QUICK\s*=.*$", "QUICK = True", src, flags=re.M)
    src = re.sub(r"^MODEL\s*=.*$", f"MODEL = {model!r}", src, flags=re.M)
    src = re.sub(r"^TEXT\s*=.*$", f"TEXT = {text!r}", src, flags=re.M)
    params[0]["source"] = src
    path = workdir / "quickstart.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _settings(settings_dir: Path) -> None:
    """JupyterLab user settings for the run: every cell in the DOM, no news or update pop-ups."""
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        f = settings_dir / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values), encoding="utf-8")


@pytest.fixture
def chromium():
    """(playwright.sync_api, path of Chromium); skips, saying why, when either is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright Python package is not installed (pip install playwright)"
    )
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium found: apt-get install -y chromium (or set HANDWRITING_CHROMIUM=/path/to/chrome)")
    return sync_api, path


@pytest.fixture
def jupyterlab(chromium, tmp_path: Path):
    """JupyterLab serving a copy of notebook 00 from a temporary folder; yields (base url, token, notebook
    name, a function returning the server's log)."""
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    model, text = _writer_model()
    work = tmp_path / "work"
    work.mkdir()
    nb = _prepare(work, model, text)
    _settings(tmp_path / "lab-settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "HANDWRITING_FIGURES": str(tmp_path / "figures"),  # never into the repository's figures/
        "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    log = open(tmp_path / "jupyterlab.log", "w+b")
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        log.flush()
        log.seek(0)
        return log.read().decode("utf-8", "replace")[-4000:]

    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server_log()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within 90 s:\n{server_log()}")
            time.sleep(0.25)
        yield base, token, nb.name, server_log
    finally:
        try:  # a clean shutdown stops the kernels too
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=5).close()
        except OSError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the server's own process group (a stuck kernel)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_quickstart_panel_bias_slider_changes_the_handwriting(chromium, jupyterlab, tmp_path: Path):
    sync_api, executable = chromium
    base, token, name, server_log = jupyterlab

    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        except Exception as exc:  # a Chromium that Playwright cannot drive
            pytest.skip(f"cannot start Chromium at {executable} with Playwright: {str(exc).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            try:
                _drive(page, f"{base}/lab/tree/{name}?token={token}", tmp_path)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                print("screenshot of the failure:", tmp_path / "failure.png")
                print("JupyterLab log:\n", server_log())
                raise
        finally:
            browser.close()


def _drive(page, url: str, tmp_path: Path) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached")
    # the kernel must be up before "Run All"; JupyterLab may still ask which kernel to start
    select = page.locator(".jp-Dialog").filter(has_text="Select Kernel").get_by_role("button", name="Select")
    kernel_idle = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(
        e => / \\| Idle$/.test(e.innerText.trim()) && !e.innerText.includes('No Kernel'))"""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.evaluate(kernel_idle):  # "Python 3 (ipykernel) | Idle", not "No Kernel | Initializing"
        if select.count():
            select.click()
        if time.monotonic() > deadline:
            raise AssertionError("the notebook's kernel did not start")
        page.wait_for_timeout(250)

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    page.wait_for_timeout(500)
    if select.count():
        select.click()

    # every code cell has run (none queued or running, at least one numbered), or one has failed
    page.wait_for_function(
        """() => {
            const failed = [...document.querySelectorAll(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
                .some(e => /Traceback|Error\\b/.test(e.textContent));
            // queued and running cells show [*]; a solution cell's collapsed input shows no number at all
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
            return failed || (prompts.some(t => /\\[\\d+\\]/.test(t)) && !prompts.some(t => /\\[\\*\\]/.test(t)));
        }""",
        timeout=TIMEOUT_MS,
    )
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
        has_text=re.compile(r"Traceback|Error\b")
    )
    if errors.count():
        raise AssertionError("a cell of the notebook failed:\n" + "\n".join(errors.all_inner_texts())[:3000])

    drawing = page.locator(".widget-html-content > svg").first  # the panel's handwriting (an SVG in an HTML widget)
    drawing.wait_for(state="visible")
    status = page.locator(".widget-label").filter(has_text=re.compile(r"\d+ lines? in ")).first
    status.wait_for(state="visible")
    time.sleep(0.5)  # let a just-finished background job settle
    before_svg = drawing.evaluate("e => e.outerHTML")
    before_png = drawing.screenshot(path=str(tmp_path / "before.png"))

    slider = page.locator(".widget-hslider").filter(
        has=page.locator("label.widget-label", has_text=re.compile(r"^\s*bias\s*$"))
    ).first
    readout = slider.locator(".widget-readout")
    old_value = readout.inner_text()
    handle = slider.locator(".noUi-handle")
    track = slider.locator(".noUi-target")
    handle.scroll_into_view_if_needed()
    hb, tb = handle.bounding_box(), track.bounding_box()
    y = hb["y"] + hb["height"] / 2
    # drag the handle to the far end of the track away from it (a real mouse drag)
    target_x = tb["x"] + (tb["width"] * 0.98 if hb["x"] < tb["x"] + tb["width"] / 2 else tb["width"] * 0.02)
    page.mouse.move(hb["x"] + hb["width"] / 2, y)
    page.mouse.down()
    page.mouse.move((hb["x"] + target_x) / 2, y, steps=5)
    page.mouse.move(target_x, y, steps=5)
    page.mouse.up()
    if readout.inner_text() == old_value:  # fall back to the keyboard (noUiSlider handles are focusable)
        handle.focus()
        page.keyboard.press("End" if hb["x"] < tb["x"] + tb["width"] / 2 else "Home")
    page.wait_for_function(
        "([el, old]) => el.innerText.trim() !== old.trim()", arg=[readout.element_handle(), old_value],
        timeout=10_000,
    )
    new_value = readout.inner_text()

    # the kernel writes again with the new bias and the panel's SVG is replaced
    page.wait_for_function(
        """([old]) => {
            const svg = document.querySelector('.widget-html-content > svg');
            return svg !== null && svg.outerHTML !== old;
        }""",
        arg=[before_svg],
        timeout=TIMEOUT_MS,
    )
    time.sleep(0.3)
    after_png = drawing.screenshot(path=str(tmp_path / "after.png"))
    assert after_png != before_png, (
        f"the panel's drawing looks the same after moving the bias from {old_value} to {new_value}"
    )
    assert page.locator(".widget-label").filter(has_text=re.compile(r"^error")).count() == 0
