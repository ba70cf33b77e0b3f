"""Atomic file writing: a failure never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from pathlib import Path

#: A temporary file untouched for this long (seconds) belongs to a writer that died (killed, power loss): a
#: live download writes at least once per network timeout (60 s by default).
STALE_AFTER = 600.0


def _temporaries(path: Path) -> re.Pattern:
    # ".<name>.<8 random characters>.part"; also matches the names of earlier versions (tempfile.mkstemp)
    return re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.part")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary file beside ``path``; on success it replaces ``path`` (``os.replace``), on any
    exception it is removed and ``path`` is left as it was.

    A replaced file keeps its permission bits; a new one gets those of ``open()`` (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep = stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:
        keep = None
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask, as for open()
            break
        except FileExistsError:  # a name collision (32 random bits): draw another
            continue
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep is not None:
            os.chmod(tmp, keep)  # e.g. a 0600 file must not become readable by others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(path: str | os.PathLike, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` left beside ``path`` when its process died.

    Only files not modified for ``older_than`` seconds go: a younger one may be another process's write in
    progress.  Returns the files removed; errors (a read-only directory) are ignored.
    """
    path = Path(path)
    pattern = _temporaries(path)
    cutoff = time.time() - older_than
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if pattern.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    return removed


# ----------------------------------------------------------------------------------------------------------
# paths recorded in a model's description


def portable_arg(arg: str) -> str:
    """A command-line word to record: an absolute path (alone or after ``--opt=``/``kind:``) loses its folders."""
    head, sep, tail = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
    kind, colon, rest = tail.partition(":")
    if colon and not kind.startswith("/") and os.path.isabs(rest):
        return f"{head}{sep}{kind}:{Path(rest).name}"
    return f"{head}{sep}{portable_path(Path(tail))}" if os.path.isabs(tail) else arg


def portable_path(path: Path) -> str:
    """A path to record in a model's description: relative as given, else just the file's name (an absolute
    path names one machine's folders, which mean nothing elsewhere)."""
    return str(path) if not path.is_absolute() else path.name


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (data sets, weights, states)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
