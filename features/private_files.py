"""Files holding health data: created readable by their owner only (0600), new directories 0700.

Modes are set explicitly, not left to the process umask: a default umask of 022 makes every
new file world-readable, and a clinic's sessions, scores and exports must not be.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | Path) -> Path:
    """Create ``path`` and any missing parents as 0700; a directory that already exists keeps its mode.

    An existing directory is the operator's (a shared output folder, the current directory):
    tightening it would be a surprise. The files written into it are 0600 either way.
    """
    path = Path(path)
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process created it first: not ours to change
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered through the umask
    return path


def private_file(path: str | Path) -> Path:
    """Make sure ``path`` exists as a 0600 file before anything writes health data into it.

    Writers (pandas, pyarrow, SQLite) that open an existing file keep its mode, so creating
    it first closes the window in which a umask-mode file would hold data.
    """
    path = Path(path)
    private_dir(path.parent)
    # Read-only: a reader (or a writer that lacks the right) must not fail here; its own open reports that.
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)  # the umask filtered the mode; an earlier 0644 file of ours tightens too
    except PermissionError:
        pass  # someone else's file (a shared database): its owner decides its mode
    finally:
        os.close(descriptor)
    return path


def private_tree(root: str | Path) -> None:
    """Every file under ``root`` 0600 and every directory 0700 (files a library wrote with the umask's mode)."""
    root = Path(root)
    for directory, _subdirs, files in os.walk(root):
        os.chmod(directory, DIR_MODE)
        for name in files:
            os.chmod(Path(directory) / name, FILE_MODE)
