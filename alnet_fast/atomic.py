"""Atomic file writes: every output alnet_fast writes appears whole under its final name, or not at all.

A writer gets a hidden temporary file beside the destination and the temporary is renamed into place
(``os.replace``) once it is complete; on any exception it is removed. Interrupts that land between those
steps are covered by ``remove_unfinished()``, which the CLI calls on Ctrl-C and which runs at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Iterator

from .paths import full_suffix, strip_suffix

_UNFINISHED: set[Path] = set()  # temporaries created and not yet renamed into place or removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path`` (same suffix); on success rename it onto ``path``,
    with the mode any new file gets (0o666 less the umask) whatever the writer did.

    On any exception, KeyboardInterrupt included, the temporary file is removed and ``path`` is untouched.
    An interrupt that lands between two steps here (before the ``try`` is entered, or inside the
    handler) can outrun that cleanup: ``remove_unfinished()`` then deletes what is left. The CLI
    calls it on Ctrl-C, and it runs at interpreter exit.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 less the umask
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer that replaced the file (safetensors: 0o600)
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _UNFINISHED.discard(tmp)


def _create_temporary(path: Path) -> Path:
    """Create an empty ``.<name>.<random>.part<suffix>`` beside ``path``, listed in _UNFINISHED before it exists.

    Mode 0o666 less the umask, as for any new file.
    """
    while True:
        tmp = path.with_name(f".{strip_suffix(path).name}.{secrets.token_hex(4)}.part{full_suffix(path)}")
        _UNFINISHED.add(tmp)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except OSError as error:  # FileExistsError: a clash of random names, so draw again
            _UNFINISHED.discard(tmp)
            if not isinstance(error, FileExistsError):
                raise


@atexit.register
def remove_unfinished() -> list[Path]:
    """Delete the temporaries that interrupted atomic writes left behind; returns their paths."""
    removed = sorted(_UNFINISHED)
    for tmp in removed:
        tmp.unlink(missing_ok=True)
        _UNFINISHED.discard(tmp)
    return removed
