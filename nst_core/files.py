"""Writing output files atomically (a hidden temp file, then a rename), with the permissions a
user expects: 0666 less the umask, as any program's new file (``mkstemp``'s 0600 would stick)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


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
