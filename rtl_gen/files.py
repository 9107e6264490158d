"""Outputs written whole: every file goes to a temporary sibling first and is renamed into place,
with the mode the umask gives (0644 typically), and a file system that refuses a write ends as
one :class:`~rtl_gen.errors.OutputError` naming the path.

:func:`write_files` writes several files into one folder all or nothing as far as the file
system allows: every target is checked and every temporary written before the first rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

__all__ = ["cache_dir", "check_output", "locked", "make_dir", "new_sibling", "output_error",
           "prepare_yowasp", "write_file", "write_files"]


def cache_dir() -> Path:
    """The user's cache folder for rtl_gen (``~/.cache/rtl_gen`` on Linux,
    :func:`platformdirs.user_cache_dir`): simulator builds and synthesis results that
    outlive a command, never inside the package or the working directory."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("rtl_gen"))


@contextlib.contextmanager
def locked(path) -> Iterator[None]:
    """An exclusive lock on the file ``path`` (made if missing), held for the ``with`` block:
    processes that share a cache folder (parallel tests, a sweep's workers) take turns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_PREPARED: set[str] = set()


def prepare_yowasp(tool: str) -> None:
    """Run the YoWASP tool ``tool`` once (``--version``) under a lock shared by all processes,
    the first time this process uses it.

    On its first run YoWASP compiles the tool's WebAssembly and writes the machine code into
    its cache folder in place; another process that loads the half-written file dies with
    SIGBUS.  Doing the first run under one lock means the compile happens once and every
    later run finds a complete file.  Exit status and output do not matter here; a missing
    tool is left for the real run to report."""
    if tool in _PREPARED:
        return
    with locked(cache_dir() / "yowasp.lock"):
        try:
            subprocess.run([tool, "--version"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
        except (OSError, subprocess.SubprocessError):
            pass
    _PREPARED.add(tool)


def output_error(path, e: OSError, what: str = "cannot write") -> OutputError:
    """``<path>: cannot write: <reason>`` for the :class:`OSError` ``e`` (the reason without
    the names of temporary files)."""
    return OutputError(f"{os.fspath(path)}: {what}: {e.strerror or e}")


def check_output(path, *, folder: bool = False) -> Path:
    """Whether ``path`` can be written as a file (or, with ``folder``, as a folder) without
    writing anything: a path of the wrong kind, or under something that is not a folder (a
    regular file, say), raises :class:`OutputError`.  Commands call it before their work, so
    that a bad output location fails first, not after minutes of computing."""
    path = Path(path)
    if path.is_dir():
        if not folder:
            raise OutputError(f"{path}: is a folder; expected a file name")
        return path
    if path.exists() or path.is_symlink():
        if folder:
            raise OutputError(f"{path}: exists and is not a folder")
        return path
    if path.name in ("", ".", ".."):
        raise OutputError(f"{path}: is not a file name")
    parent = Path(os.path.abspath(path)).parent
    while not (parent.exists() or parent.is_symlink()) and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot be created: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot be created: {parent} is not writable")
    return path


def make_dir(path) -> Path:
    """Create the folder ``path`` (and its parents) unless it exists; an
    :class:`OutputError` when something else is in the way or the file system refuses."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists() or path.is_symlink():
        raise OutputError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, e, "cannot create the folder") from None
    return path


def new_sibling(path: Path, tag: str = "tmp") -> Path:
    """A new, empty file next to ``path`` named ``.<name>.<tag>-<random>``, created with the
    umask's mode (``0o666 & ~umask``; :func:`tempfile.mkstemp` would make it 0600)."""
    for _ in range(100):
        p = path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}"
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return p
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")  # pragma: no cover


def _check_target(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        raise OutputError(f"{path}: is a folder; refusing to replace it with a file")


def write_files(folder, files: dict[str, str | bytes]) -> dict[str, Path]:
    """Write ``files`` (name to text or bytes) into ``folder`` (created if need be), each
    through a temporary sibling; the renames come last, after every target was checked and
    every temporary written, so a failure leaves none of the files new or half-written.
    A name may hold subfolders (``plots/a.svg``); they are made first.  Returns the path of
    each file by name."""
    folder = make_dir(folder)
    paths = {name: folder / name for name in files}
    for path in paths.values():
        _check_target(path)
    for parent in dict.fromkeys(p.parent for p in paths.values() if p.parent != folder):
        make_dir(parent)
    temps: dict[str, Path] = {}
    try:
        for name, content in files.items():
            path = paths[name]
            try:
                tmp = temps[name] = new_sibling(path)
                data = content.encode("utf-8") if isinstance(content, str) else content
                tmp.write_bytes(data)
            except OSError as e:
                raise output_error(path, e) from None
        for name, path in paths.items():
            try:
                os.replace(temps[name], path)
            except OSError as e:
                raise output_error(path, e) from None
            del temps[name]
    finally:
        for tmp in temps.values():
            try:
                tmp.unlink()
            except OSError:
                pass
    return paths


def write_file(path, content: str | bytes) -> Path:
    """Write one file whole (:func:`write_files`), creating its folder if need be."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputError(f"{path}: is not a file name")
    return write_files(path.parent, {path.name: content})[path.name]
