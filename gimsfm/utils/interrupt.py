"""Ctrl-C and SIGTERM end a command with one line and exit 130 / 143, never a C++ stack trace.

pycolmap installs glog's failure signal handler on import, for SIGTERM too: a `kill` during mapping
printed a long C++ trace. `install()` imports pycolmap first and then puts Python's own handler back.
Python runs that handler only between bytecodes, so a signal that arrives inside a long C++ call
(COLMAP mapping, verification) would wait for it to return: a watchdog thread woken through
`signal.set_wakeup_fd` ends the process if the main thread has not reacted within `GRACE_S`. Ending it
there is as safe as the SIGKILL the fault-injection suite (tests/test_fault.py) proves every stage against.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

MESSAGE = "interrupted; rerun the same command to resume"
message = MESSAGE  # a command whose rerun needs another flag says so here (train: --resume)
GRACE_S = 2.0
_received: dict[int, int] = {}  # signals the watchdog saw / the main thread handled, per number
_handled: dict[int, int] = {}


class Interrupted(BaseException):
    """Raised in the main thread on SIGINT / SIGTERM; `exit_code` is 128 + the signal number.

    Not a KeyboardInterrupt: click turns that into a silent exit 130 before the CLI could say anything."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def _on_signal(signum: int, frame) -> None:
    _handled[signum] = _handled.get(signum, 0) + 1
    raise Interrupted(signum)


def _watchdog(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        for signum in data:
            if signal.getsignal(signum) is not _on_signal:
                continue  # someone else's handler now (the trainer's graceful SIGTERM): theirs to act
            _received[signum] = _received.get(signum, 0) + 1
            time.sleep(GRACE_S)
            if _handled.get(signum, 0) < _received[signum]:  # the main thread is stuck in C++
                sys.stderr.write(message + "\n")
                sys.stderr.flush()
                os._exit(128 + signum)


def install() -> None:
    """Handle SIGINT and SIGTERM in Python (call once, in the main thread, before the work starts)."""
    try:
        import pycolmap  # noqa: F401  its glog handler must be installed before we replace it
    except ImportError:
        pass
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_signal)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watchdog, args=(read_fd,), daemon=True, name="gimsfm-signals").start()
