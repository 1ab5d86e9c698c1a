"""Where evalkit keeps its own files, and the one way it writes a file: atomically.

`cache_root()` is `$EVALKIT_CACHE`, else `~/.cache/evalkit`: the embedding cache (`embeddings/`) and the
tokenizer folders built around bare sentencepiece files (`tokenizers/`) live under it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Callable, Union

from evalkit import EvalkitError


def source_checkout() -> Path | None:
    """The source tree evalkit runs from (a clone or an unpacked sdist: pyproject.toml beside the package), or
    None for an installed package, whose files evalkit never writes."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def cache_root() -> Path:
    base = os.environ.get("EVALKIT_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "evalkit"


Content = Union[bytes, str, Callable[[Path], None]]


def file_mode() -> int:
    """What a plain `open(path, "w")` gives now: 0o666 less the process's umask (mkstemp makes files 0600).
    Read where the kernel shows it (/proc/self/status), which leaves the umask alone; elsewhere by setting and
    restoring it, under a lock so evalkit's own threads never see the stand-in."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


_UMASK_LOCK = threading.Lock()


def atomic_write(path: Path, content: Content) -> None:
    """Write `content` (bytes, text as UTF-8, or a function that writes a given path) to a temporary file
    beside `path`, then rename it onto `path`: readers see the old file or the whole new one, never a part.
    The file gets the user's usual permissions (umask), so a shared folder stays readable by the team."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def probe_writable(folder: str | Path) -> Path:
    """Create and delete a file in `folder`, or, while it does not exist yet, in its nearest existing parent
    (where it would be made); returns where it probed. Raises OSError when that cannot be done."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(20, f"{probe} is not a folder")
    fd, name = tempfile.mkstemp(dir=probe, prefix=".evalkit-write-check-")
    os.close(fd)
    os.unlink(name)
    return probe


def check_writable(folder: str | Path, what: str) -> None:
    """Raise EvalkitError (one line) unless `folder` can be written (see `probe_writable`); leaves nothing behind."""
    folder = Path(folder)
    try:
        probe_writable(folder)
    except OSError as exc:
        raise EvalkitError(f"{what} {folder} is not writable: {exc.strerror or exc}; pass a folder you can "
                           f"write to") from exc
