"""Files that appear whole: build under a hidden temporary name, then publish atomically.

A writer creates ``.<name>.<host>.<pid>.tmp`` next to the target, writes and fsyncs it, and
only then gives it the target's name (:func:`publish`): a reader, or a run killed at any
moment, sees either no file (or the old one) or the complete new one. Temporary files of
processes that died are removed by the next writer on the same host.
"""

from __future__ import annotations

import contextlib
import os


def fsync_dir(path) -> None:
    """fsync the directory holding ``path`` so that a rename in it is durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_path(path) -> str:
    """A hidden sibling name for building ``path``: ``.<name>.<host>.<pid>.tmp``.

    Creates the directory of ``path`` if it does not exist yet.
    """
    head, name = os.path.split(os.path.abspath(path))
    os.makedirs(head, exist_ok=True)
    return os.path.join(head, f".{name}.{os.uname().nodename}.{os.getpid()}.tmp")


def remove_stale_temps(path) -> None:
    """Delete temp siblings of ``path`` left by killed processes of this host."""
    head, name = os.path.split(os.path.abspath(path))
    prefix, host = f".{name}.", os.uname().nodename
    for entry in os.listdir(head or "."):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        owner, _, pid = entry[len(prefix):-4].rpartition(".")
        if owner == host and pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(head, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(tmp: str, path, *, replace: bool) -> None:
    """Give the finished temp file ``tmp`` its final name ``path``, atomically and durably.

    ``replace=False`` never replaces an existing file (hard link, then unlink the temp
    name; FileExistsError if ``path`` exists); ``replace=True`` swaps it in with
    ``os.replace``. Either way a reader sees the old file or the complete new one, never a
    partial file.
    """
    path = os.fspath(path)
    if replace:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # raises FileExistsError rather than replace
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: check, then rename
            if os.path.lexists(path):
                raise FileExistsError(path) from None
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
    fsync_dir(path)
