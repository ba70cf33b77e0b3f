"""Download or locate the data sets: bigbank (random strings) and synthbank (English words).

Both are the cursive transformer's (Greydanus & Wimpee 2025), written by one writer in the same format.
``handwriting data download NAME`` fetches the file from a pinned commit, checks its SHA-256 and stores it in
the cache directory; ``--from FILE`` installs a copy you already have (offline machines) with the same check.
``handwriting data path NAME`` prints where the file is found.  Nothing in the package touches the network
except :func:`download`.

Where a data set is looked for (:func:`dataset_path`; :func:`bigbank_path` for bigbank), in order:

1. ``$HANDWRITING_BIGBANK`` / ``$HANDWRITING_SYNTHBANK`` if set (any file in the format, ``.zip`` or ``.json``;
   not checksummed);
2. ``$HANDWRITING_DATA/<file>`` (default ``~/.cache/handwriting``) if its checksum is right;
3. ``<checkout>/../shared/data/<file>`` beside a development checkout, if its checksum is right;
4. a fresh download when ``download=True``; otherwise a :class:`DataError` that says what to run.

IAM-OnDB cannot be downloaded automatically (it needs a registration); see ``data/README.md``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write, remove_stale_temporaries, sha256_file
from ..errors import DataError

__all__ = ["DATASETS", "DatasetFile", "DownloadError", "bigbank_path", "data_dir", "dataset_path", "download",
           "sha256_file"]

EPILOG = """\
examples:
  handwriting data download bigbank                 fetch (2.9 MB) into the cache and verify it
  handwriting data download bigbank --from FILE     install a copy you already have (offline)
  handwriting data path bigbank                     print where bigbank_3500.json.zip is found
  handwriting data download synthbank               the 3,000 English words (2.9 MB)

environment:
  HANDWRITING_BIGBANK  use this bigbank file instead of searching
  HANDWRITING_SYNTHBANK  use this synthbank file instead of searching
  HANDWRITING_DATA     the cache directory (default ~/.cache/handwriting)

IAM-OnDB needs a (free, non-commercial) registration and cannot be downloaded by this command:
see data/README.md for where to get it and how to point handwriting.datasets.iam.load_iam at it.
"""

IAM_HELP = (
    "IAM-OnDB cannot be downloaded automatically: register (free, non-commercial) at "
    "https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database, download lineStrokes-all.tar.gz, "
    "ascii-all.tar.gz and the IAM-OnDB-t1 split files (trainset.txt, testset_v.txt, testset_f.txt, testset_t.txt), "
    "unpack them into one folder and pass that folder to handwriting.datasets.iam.load_iam(root) "
    "(data/README.md explains the layout)"
)


class DownloadError(DataError):
    """A download failed or delivered the wrong bytes; the message says how to get the file another way."""


@dataclass(frozen=True)
class DatasetFile:
    """A downloadable file pinned by address, size and SHA-256."""

    name: str
    filename: str
    url: str
    sha256: str
    size: int


DATASETS: dict[str, DatasetFile] = {
    "bigbank": DatasetFile(
        name="bigbank",
        filename="bigbank_3500.json.zip",
        url=(
            "https://raw.githubusercontent.com/greydanus/cursivetransformer/"
            "553c7e2696855d4e432b2544b4a5ef05ae85307c/data/bigbank_3500.json.zip"
        ),
        sha256="4a42598977414303a0bd4d03c805beb3ce6626b57a364a9c07c839f0cd591b1f",
        size=2_944_143,
    ),
    "synthbank": DatasetFile(
        name="synthbank",
        filename="synthbank_3000.json.zip",
        url=(
            "https://raw.githubusercontent.com/greydanus/cursivetransformer/"
            "01639fbe89371073369530c9c7993624a301419f/data/synthbank.json.zip"
        ),
        sha256="38088a19a3b70b93b9f46183471838ed1fcd30d97b9de9b5113601914d68b6a3",
        size=2_946_157,
    ),
}

_CHUNK = 1 << 16
_verified: dict[tuple[str, int, int, str], bool] = {}  # (path, size, mtime_ns, sha256) -> matches


def data_dir() -> Path:
    """The cache directory: ``$HANDWRITING_DATA`` or ``~/.cache/handwriting``."""
    env = os.environ.get("HANDWRITING_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "handwriting"


def _dev_copy(spec: DatasetFile) -> Path:
    """Where a development checkout keeps its copy: ``<repo root>/../shared/data/<file>``."""
    import handwriting

    return Path(handwriting.__file__).resolve().parents[2] / "shared" / "data" / spec.filename


def _spec(name: str) -> DatasetFile:
    if name == "iam":
        raise DataError(IAM_HELP)
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown data set {name!r}; known: {known} (and iam, installed by hand)") from None


def _matches(path: Path, spec: DatasetFile) -> bool:
    """Whether ``path`` is the pinned file (size, then SHA-256; remembered per size and mtime)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not path.is_file() or st.st_size != spec.size:
        return False
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, spec.sha256)
    if key not in _verified:
        try:
            _verified[key] = sha256_file(path) == spec.sha256
        except OSError:
            return False
    return _verified[key]


def bigbank_path(download: bool = False) -> Path:
    """Find ``bigbank_3500.json.zip`` (see the module docstring for the order); download it if asked."""
    return dataset_path("bigbank", download=download)


def dataset_path(name: str, download: bool = False) -> Path:
    """Find data set ``name``'s file (see the module docstring for the order); download it if asked."""
    spec = _spec(name)
    var = f"HANDWRITING_{name.upper()}"
    env = os.environ.get(var)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise DataError(
                f"{var}={env} does not name a file; point it at {spec.filename} (or its .json) or unset it"
            )
        return p
    cached = data_dir() / spec.filename
    remove_stale_temporaries(cached)  # left by a download that was killed
    if _matches(cached, spec):
        return cached
    dev = _dev_copy(spec)
    if _matches(dev, spec):
        return dev
    if download:
        return globals()["download"](name)  # the parameter shadows the function's name
    corrupt = f" ({cached} exists but is not the expected file: its checksum differs)" if cached.exists() else ""
    raise DataError(
        f"{spec.filename} not found{corrupt}; run `python -m handwriting data download {name}` "
        f"({spec.size / 1e6:.1f} MB, checksummed), or on an offline machine "
        f"`python -m handwriting data download {name} --from PATH`, or set {var}=/path/to/{spec.filename}"
    )


def _verify(digest: str, size: int, spec: DatasetFile, source: str) -> None:
    if size != spec.size or digest != spec.sha256:
        raise DownloadError(
            f"{source}: not the expected {spec.filename}: got {size:,} bytes with SHA-256 {digest}, expected "
            f"{spec.size:,} bytes with SHA-256 {spec.sha256}; nothing was saved. It is a damaged copy or a different "
            f"version: fetch it again with `python -m handwriting data download {spec.name} --force`"
        )


def download(
    name: str = "bigbank",
    from_path: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch data set ``name`` into the cache directory (or copy it from ``from_path``) and verify it.

    An existing, verified copy is kept unless ``force``.  The bytes go to a temporary file beside the
    destination that replaces it only once the size and SHA-256 match; on any failure the temporary file
    is removed and the destination is left as it was; temporary files of downloads that were killed
    (untouched for ten minutes) are removed first.  ``progress=None`` shows a bar on terminals only.
    Returns the path of the verified file.
    """
    spec = _spec(name)
    dest = data_dir() / spec.filename
    if from_path is not None:
        src = Path(from_path).expanduser()
        if not src.is_file():
            raise DataError(f"--from {src}: no such file; give the path of a downloaded {spec.filename}")
        return _install(dest, spec, source=str(src), opener=lambda: open(src, "rb"), total=src.stat().st_size,
                        progress=False)
    if not force and _matches(dest, spec):
        return dest
    url = spec.url
    if not url.startswith(("https://", "http://", "file://")):
        raise DownloadError(
            f"refusing to download {spec.filename} from {url!r}: only http(s) and file URLs are allowed"
        )

    def opener():
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "handwriting"})
            return urllib.request.urlopen(request, timeout=timeout)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(
                f"cannot download {spec.filename} from {url}: {reason}; check the network connection, or fetch "
                f"the file by other means and run `python -m handwriting data download {name} --from FILE`"
            ) from exc

    return _install(dest, spec, source=url, opener=opener, total=None, progress=progress)


def _install(dest: Path, spec: DatasetFile, source: str, opener, total: int | None, progress: bool | None) -> Path:
    """Stream ``opener()`` into ``dest`` atomically, verifying size and SHA-256 before the file appears."""
    from tqdm.auto import tqdm

    remove_stale_temporaries(dest)  # a download that was killed leaves its temporary file behind
    try:
        with atomic_write(dest, "wb") as out, opener() as src:
            if total is None:
                length = src.headers.get("Content-Length") if hasattr(src, "headers") else None
                total = int(length) if length and str(length).isdigit() else spec.size
            h = hashlib.sha256()
            n = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename,
                      disable=(None if progress is None else not progress), leave=False) as bar:
                while chunk := src.read(_CHUNK):
                    n += len(chunk)
                    if n > spec.size:
                        raise DownloadError(
                            f"{source}: more than the expected {spec.size:,} bytes of {spec.filename}; nothing was "
                            "saved — the address no longer serves the pinned file"
                        )
                    h.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            _verify(h.hexdigest(), n, spec, source)
    except DataError:
        raise
    except OSError as exc:
        raise DownloadError(
            f"{source}: reading or saving {spec.filename} into {dest.parent} failed ({exc}); nothing was saved — "
            "check the connection and the free space, then try again"
        ) from exc
    return dest


# ----------------------------------------------------------------------------------------------------------
# command line: `handwriting data ...`


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    d = sub.add_parser("download", help="download a data set into the cache and verify its checksum")
    d.add_argument("name", metavar="NAME", help="data set: bigbank | synthbank")
    d.add_argument("--from", dest="from_path", metavar="PATH", help="install a local copy instead of downloading")
    d.add_argument("--force", action="store_true", help="download again even if a verified copy exists")
    p = sub.add_parser("path", help="print where a data set is found (never downloads)")
    p.add_argument("name", metavar="NAME", help="data set: bigbank | synthbank")


def run(args) -> int:
    if args.action == "download":
        path = download(args.name, from_path=args.from_path, force=args.force)
        print(path)
        return 0
    if args.action == "path":
        print(dataset_path(args.name))
        return 0
    raise DataError(f"unknown action {args.action!r}; use download or path")  # argparse prevents this
