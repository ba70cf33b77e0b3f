"""The downloader and `handwriting data`, without the network: file:// URLs and a local http.server."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import handwriting
from handwriting import cli
from handwriting.datasets import download as dl
from handwriting.errors import DataError

PAYLOAD = b"pretend this is bigbank_3500.json.zip\n" * 1000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, no $HANDWRITING_BIGBANK, and no development copy to fall back on."""
    d = tmp_path / "cache"
    monkeypatch.setenv("HANDWRITING_DATA", str(d))
    monkeypatch.delenv("HANDWRITING_BIGBANK", raising=False)
    monkeypatch.setattr(dl, "_dev_copy", lambda spec: tmp_path / "no-checkout" / spec.filename)
    dl._verified.clear()
    return d


def _pin(monkeypatch, url: str, payload: bytes = PAYLOAD) -> dl.DatasetFile:
    """Point the bigbank entry at ``url`` with the checksum and size of ``payload``."""
    spec = dataclasses.replace(
        dl.DATASETS["bigbank"], url=url, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload)
    )
    monkeypatch.setitem(dl.DATASETS, "bigbank", spec)
    return spec


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL and the request log."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # talk to 127.0.0.1 directly
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *a):  # keep pytest output clean
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_pinned_source_is_the_documented_one():
    spec = dl.DATASETS["bigbank"]
    assert spec.url == (
        "https://raw.githubusercontent.com/greydanus/cursivetransformer/"
        "553c7e2696855d4e432b2544b4a5ef05ae85307c/data/bigbank_3500.json.zip"
    )
    assert spec.sha256 == "4a42598977414303a0bd4d03c805beb3ce6626b57a364a9c07c839f0cd591b1f"
    assert spec.size == 2_944_143


def test_download_over_http_verifies_and_caches(cache, server, monkeypatch):
    base, www, requests = server
    (www / "bb.zip").write_bytes(PAYLOAD)
    _pin(monkeypatch, f"{base}/bb.zip")
    path = dl.download("bigbank")
    assert path == cache / "bigbank_3500.json.zip" and path.read_bytes() == PAYLOAD
    assert _leftovers(cache) == ["bigbank_3500.json.zip"]
    assert dl.bigbank_path() == path  # the verified cache is found first
    dl.download("bigbank")  # a verified copy is not fetched again ...
    assert len(requests) == 1
    dl.download("bigbank", force=True)  # ... unless forced
    assert len(requests) == 2


def test_corrupt_download_leaves_no_file(cache, server, monkeypatch):
    base, www, _ = server
    (www / "bb.zip").write_bytes(PAYLOAD[:-1] + b"X")  # same size, different bytes
    _pin(monkeypatch, f"{base}/bb.zip")
    with pytest.raises(dl.DownloadError, match=r"bb\.zip: not the expected bigbank_3500\.json\.zip.*SHA-256"):
        dl.download("bigbank")
    assert _leftovers(cache) == []
    (www / "bb.zip").write_bytes(PAYLOAD + b"more")  # too long: stops reading, nothing kept
    with pytest.raises(dl.DownloadError, match="more than the expected"):
        dl.download("bigbank")
    assert _leftovers(cache) == []


def test_corrupt_download_keeps_the_previous_good_file(cache, server, monkeypatch):
    base, www, _ = server
    (www / "bb.zip").write_bytes(PAYLOAD)
    _pin(monkeypatch, f"{base}/bb.zip")
    good = dl.download("bigbank")
    (www / "bb.zip").write_bytes(PAYLOAD[: len(PAYLOAD) // 2])  # a truncated transfer
    with pytest.raises(dl.DownloadError, match="nothing was saved"):
        dl.download("bigbank", force=True)
    assert good.read_bytes() == PAYLOAD and _leftovers(cache) == ["bigbank_3500.json.zip"]


def test_unreachable_server_is_a_clear_error(cache, server, monkeypatch):
    base, _, _ = server
    _pin(monkeypatch, f"{base}/missing.zip")  # 404
    with pytest.raises(dl.DownloadError, match=r"cannot download bigbank_3500\.json\.zip.*--from FILE"):
        dl.download("bigbank")
    assert _leftovers(cache) == []


def test_download_from_file_url(cache, tmp_path, monkeypatch):
    src = tmp_path / "src.zip"
    src.write_bytes(PAYLOAD)
    _pin(monkeypatch, src.as_uri())
    assert dl.download("bigbank").read_bytes() == PAYLOAD


def test_from_path_with_the_real_file(cache, bigbank_path):
    path = dl.download("bigbank", from_path=bigbank_path)  # the real pinned checksum
    assert path == cache / "bigbank_3500.json.zip"
    assert dl.sha256_file(path) == dl.DATASETS["bigbank"].sha256
    assert dl.bigbank_path() == path


def test_from_path_with_a_wrong_file(cache, tmp_path):
    wrong = tmp_path / "wrong.zip"
    wrong.write_bytes(b"not bigbank")
    with pytest.raises(dl.DownloadError, match=r"wrong\.zip: not the expected.*nothing was saved"):
        dl.download("bigbank", from_path=wrong)
    assert _leftovers(cache) == []
    with pytest.raises(DataError, match=r"--from .*absent\.zip: no such file"):
        dl.download("bigbank", from_path=tmp_path / "absent.zip")


def test_resolution_order(cache, tmp_path, monkeypatch):
    payload = PAYLOAD
    spec = _pin(monkeypatch, "https://example.invalid/never-used.zip", payload)
    dev = tmp_path / "checkout-shared" / spec.filename
    monkeypatch.setattr(dl, "_dev_copy", lambda s: dev)
    with pytest.raises(DataError, match=r"not found.*data download bigbank.*--from PATH"):
        dl.bigbank_path()
    dev.parent.mkdir()
    dev.write_bytes(payload)
    assert dl.bigbank_path() == dev  # the development copy
    cache.mkdir()
    (cache / spec.filename).write_bytes(payload)
    assert dl.bigbank_path() == cache / spec.filename  # the cache wins over the checkout
    (cache / spec.filename).write_bytes(payload[::-1])  # corrupt cache: skipped
    assert dl.bigbank_path() == dev
    dev.unlink()
    with pytest.raises(DataError, match="checksum differs"):
        dl.bigbank_path()
    own = tmp_path / "mine.json"
    own.write_text("[]")
    monkeypatch.setenv("HANDWRITING_BIGBANK", str(own))
    assert dl.bigbank_path() == own  # the variable wins, unchecked
    monkeypatch.setenv("HANDWRITING_BIGBANK", str(tmp_path / "typo.zip"))
    with pytest.raises(DataError, match=r"HANDWRITING_BIGBANK=.*typo\.zip does not name a file"):
        dl.bigbank_path()


def test_bigbank_path_download_true(cache, tmp_path, monkeypatch):
    src = tmp_path / "src.zip"
    src.write_bytes(PAYLOAD)
    _pin(monkeypatch, src.as_uri())
    assert dl.bigbank_path(download=True) == cache / "bigbank_3500.json.zip"


def test_dev_copy_is_beside_the_checkout():
    expected = Path(handwriting.__file__).resolve().parents[2] / "shared" / "data" / "bigbank_3500.json.zip"
    assert dl._dev_copy(dl.DATASETS["bigbank"]) == expected


def test_cli_in_process(cache, tmp_path, monkeypatch, capsys):
    src = tmp_path / "src.zip"
    src.write_bytes(PAYLOAD)
    _pin(monkeypatch, "https://example.invalid/offline.zip")
    assert cli.main(["data", "path", "bigbank"]) == 2
    assert "data download bigbank" in capsys.readouterr().err
    assert cli.main(["data", "download", "bigbank", "--from", str(src)]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "bigbank_3500.json.zip")
    assert cli.main(["data", "path", "bigbank"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "bigbank_3500.json.zip")
    assert cli.main(["data", "download", "iam"]) == 2
    assert "fki.tic.heia-fr.ch" in capsys.readouterr().err
    assert cli.main(["data", "download", "nope"]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err


def test_cli_end_to_end(bigbank_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HANDWRITING_BIGBANK", "HANDWRITING_DATA")}
    env["HANDWRITING_DATA"] = str(tmp_path / "empty-cache")
    expected = dl._dev_copy(dl.DATASETS["bigbank"])
    if bigbank_path != expected:  # the fixture found the file through $HANDWRITING_BIGBANK
        env["HANDWRITING_BIGBANK"] = str(bigbank_path)
        expected = bigbank_path
    r = subprocess.run([sys.executable, "-m", "handwriting", "data", "path", "bigbank"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == expected
    env["HANDWRITING_BIGBANK"] = str(tmp_path / "gone.zip")
    r = subprocess.run([sys.executable, "-m", "handwriting", "data", "path", "bigbank"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "gone.zip does not name a file" in r.stderr and not r.stdout


def _killed_download(dest: Path) -> Path:
    """What a download killed mid-way leaves: atomic_write's temporary file, never renamed nor removed."""
    code = ("import os, sys; from handwriting._io import atomic_write; "
            "cm = atomic_write(sys.argv[1], 'wb'); cm.__enter__().write(b'half'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code, str(dest)], cwd=ROOT, check=False)
    (part,) = [p for p in dest.parent.iterdir() if p.name.endswith(".part")]
    return part


def test_stale_temporary_files_are_removed(cache, tmp_path, monkeypatch):
    src = tmp_path / "src.zip"
    src.write_bytes(PAYLOAD)
    spec = _pin(monkeypatch, src.as_uri())
    dest = cache / spec.filename
    old = _killed_download(dest)
    assert old.name.startswith(f".{spec.filename}.")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    live = cache / f".{spec.filename}.abcd1234.part"  # another process's download, still being written
    other = cache / ".synthbank_3000.json.zip.abcd1234.part"  # another data set's: not this lookup's business
    for p in (live, other):
        p.write_bytes(b"x")
    os.utime(other, (hour_ago, hour_ago))
    # looking the data set up cleans the cache of its dead downloads, even when it then fails
    with pytest.raises(DataError, match="not found"):
        dl.dataset_path("bigbank")
    assert _leftovers(cache) == sorted([live.name, other.name])
    # so does downloading
    os.utime(live, (hour_ago, hour_ago))
    assert dl.download("bigbank") == dest
    assert _leftovers(cache) == sorted([other.name, dest.name])
