"""Safe file writing shared by every writer of the package: atomic writes and safe names.

:func:`atomic_write` writes through a temporary file in the target's folder, flushes it to
disk and renames it over the target (``os.replace`` is atomic on POSIX), so a crash never
leaves a half-written file under the final name. The temporary name carries the writer's
process id (``.<name>.<pid>.<random>.tmp``); temporaries left by a process that was killed
(SIGKILL skips every cleanup) are removed by the next write to the same target.

:func:`safe_member_name` checks a name read from a data set's list (split file, iBims-1
``imagelist.txt``...) before it becomes part of an output path: one plain path component,
so that whatever the list says, the file stays inside the output folder.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "remove_stale_temporaries",
           "safe_member_name", "check_output_file", "check_fresh_folder", "cli_errors", "emit_json"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")
_OLD_TEMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")   # mkstemp names before the pid was added


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of earlier, killed writes to ``path``; returns what was removed.

    A temporary whose writer process is still running is kept (it may be mid-write).
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        m = _TEMP.match(tmp.name)
        if m and m["name"] == path.name:
            stale = not _alive(int(m["pid"]))
        else:
            m = _OLD_TEMP.match(tmp.name)
            stale = bool(m) and m["name"] == path.name
        if stale:
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(binary file)`` on a temporary file next to ``path``, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def emit_json(result: Any, out: str | os.PathLike | None = None, ensure_ascii: bool = True) -> str:
    """Print ``result`` as indented JSON, as every benchmark script reports, and with ``out`` also
    write it there (atomically; check ``out`` with :func:`check_output_file` before the work)."""
    text = json.dumps(result, indent=2, ensure_ascii=ensure_ascii)
    print(text)
    if out is not None:
        atomic_write_text(out, text + "\n")
    return text


def safe_member_name(name: str, where: str) -> str:
    """``name`` if it is one plain path component (no separator, not ``.``/``..``, no NUL,
    not absolute); otherwise ValueError naming ``where`` (the list file and line)."""
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
           or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"))
    if bad:
        raise ValueError(f"{where}: {name!r} is not a plain file or folder name (a path separator, '..' or an "
                         "absolute path); names read from a data set's list must stay inside the output folder")
    return name


def check_output_file(path: str | os.PathLike, what: str, overwrite: bool = False) -> Path:
    """Check before any work that ``path`` can be written: its folder is (or can become) a
    folder, it is not itself a folder, and it does not exist unless ``overwrite``.
    Raises ValueError naming ``what`` (e.g. ``--json``)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: expected a file name, found a folder")
    if path.exists() and not overwrite:
        raise ValueError(f"{what} {path}: the file exists; pass --overwrite to replace it, or choose another name")
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {path}: cannot create it, {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise ValueError(f"{what} {path}: cannot create it, {parent} is not writable")
            break
    return path


def check_fresh_folder(folder: str | os.PathLike, what: str, overwrite: bool = False) -> Path:
    """``folder`` may be written: not a file, and empty or absent unless ``overwrite``.
    ValueError naming ``what`` (e.g. ``--out``) otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder}: expected a folder, found a file")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"{what} {folder}: the folder is not empty; pass --overwrite to write into it anyway, "
                         "or choose another folder")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {folder}: cannot create it, {parent} is a file")
            break
    return folder


class cli_errors:
    """``with cli_errors("prepare_ibims.py"):`` around a script's work: a ValueError (LayoutError,
    a bad checkpoint...) or FileNotFoundError becomes one line on stderr and exit status 1."""

    def __init__(self, prog: str):
        self.prog = prog

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, (ValueError, FileNotFoundError)):
            import sys

            print(f"{self.prog}: error: {str(err).splitlines()[0] if str(err) else kind.__name__}", file=sys.stderr)
            raise SystemExit(1) from None
        return False
