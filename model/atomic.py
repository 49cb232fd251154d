"""Write a file all at once: into a temporary sibling, then rename over the target.

A crash, a failed check or Ctrl-C mid-write leaves the target as it was and no temporary behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` to fill a temporary file, then move it to `path` with umask permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; a shipped file must be readable by others
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
