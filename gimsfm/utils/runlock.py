"""One gimsfm run per output folder: an advisory lock file (fcntl.flock) holding who runs there.

The kernel drops a flock when its process dies, however it dies (SIGKILL included), so a lock is never
really stale; the file a dead run leaves behind only names it, and the next run takes over with a warning.
A second live run on the folder stops at once (RunLockedError, exit 3) instead of colliding in HDF5 or
SQLite. Readers of a folder (localize reading a map) take a shared lock: many readers, no writer.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from .. import logger
from ..errors import OutputExistsError, RunLockedError

LOCK_NAME = ".gimsfm.lock"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _describe(holder: dict) -> str:
    when = time.strftime("%H:%M", time.localtime(holder["started"])) if "started" in holder else "?"
    return f"pid {holder.get('pid', '?')}, started {when}"


class RunLock:
    """Context manager: `with RunLock(out, "reconstruct"): ...` holds OUT for this process.

    `shared=True` takes a reader's lock (several readers may hold it, a writer may not).
    """

    def __init__(self, folder: Path, command: str = "", shared: bool = False):
        self.folder, self.command, self.shared = Path(folder), command, shared
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> "RunLock":
        if self.shared and not self.folder.is_dir():
            return self  # nothing to read there: the reader reports that itself
        self.created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputExistsError(f"{self.folder} exists and is not a folder") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if self.shared and exc.errno in (errno.EACCES, errno.EROFS):
                    return self  # a read-only map: nobody can rewrite it under us either
                raise
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except OSError as exc:
                holder = self._read(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                if holder and pid_alive(holder.get("pid", -1)):
                    who = f" ({_describe(holder)})"
                else:  # only readers hold it, and they leave no name
                    who = "" if self.shared else " (a localize reading it as its map)"
                raise RunLockedError(f"another gimsfm run{who} is using {self.folder}; wait for it to finish "
                                     "or stop it, or use another output folder") from None
            # The previous holder may have removed the file between our open and our lock: retry on the new one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        if not self.shared:
            previous = self._read(fd)
            if previous.get("pid") and previous["pid"] != os.getpid():
                logger.warning("%s: taking over the lock of an earlier gimsfm run that did not finish (%s, %s)",
                               self.folder, _describe(previous), previous.get("command", "?"))
            info = {"pid": os.getpid(), "started": time.time(), "command": self.command or " ".join(sys.argv)}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        return self

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            return json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            return {}

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd is None:
            return
        if exc is not None and not hasattr(exc, "gimsfm_folder"):
            try:  # so a failed write can be reported against the folder (errors.write_failure)
                exc.gimsfm_folder = str(self.folder)
            except AttributeError:
                pass
        if not self.shared:
            try:  # unlink while still holding it, so a waiting run re-opens the fresh file (see __enter__)
                self.path.unlink()
            except OSError:
                pass
        os.close(self.fd)  # releases the flock
        self.fd = None
        if self.created:  # a run that stopped before writing anything leaves no empty folder behind
            try:
                self.folder.rmdir()
            except OSError:
                pass
