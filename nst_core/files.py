"""Writing output files atomically (a hidden temp file, then a rename), with the permissions a
user expects: 0666 less the umask, as any program's new file (``mkstemp``'s 0600 would stick);
and the checks, before any work, that an output can be written there at all."""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO, Callable


class OutputError(ValueError):
    """An output that cannot be written; the message names the path the user gave."""


def check_folder_writable(folder) -> Path:
    """The folder an output goes into (or its nearest existing parent, where it is still to be
    made) must be a folder this process may write; returns the existing one."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot create the folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to the folder {existing} (permission denied); choose another output")
    return existing


def check_free_space(folder, need: int, what) -> None:
    """Refuse before the work an output of about ``need`` bytes that the disk has no room for."""
    free = shutil.disk_usage(check_folder_writable(folder)).free
    if need > free:
        raise OutputError(f"{what} needs about {need / 1e6:.0f} MB and {Path(folder).absolute()} has "
                          f"{free / 1e6:.0f} MB free; free some space or choose another output")


def write_atomically(path, write: Callable[[BinaryIO], None], overwrite: bool = False) -> Path:
    """Call ``write(f)`` on a fresh temp file next to ``path``, then rename it to ``path``; never
    replace an existing file unless ``overwrite``, and leave no temp file behind on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _new_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        if not overwrite and path.exists():  # appeared while we worked
            raise FileExistsError(f"{path} already exists; use --overwrite to replace it")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _new_file(path: Path):
    """(name, fd) of a new hidden file next to ``path``, created with mode 0666 so the umask applies."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".nst-{secrets.token_hex(6)}{path.suffix}")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {path.parent}")
