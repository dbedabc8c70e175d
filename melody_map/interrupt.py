"""Ctrl-C during training: the first one asks training to stop at the next step, the second stops at once.

    stop = StopRequest()
    with stop.armed():               # SIGINT now sets stop.requested instead of raising
        train(..., stop=stop)        # checks stop() after each step and hands back its state
    if stop.requested: ...           # write the best checkpoint so far

While armed, the first SIGINT only sets the flag and puts back Python's own handler, so a
second SIGINT raises ``KeyboardInterrupt`` wherever the program is. Outside the main thread
(where signal handlers cannot be set) ``armed`` does nothing and Ctrl-C behaves as usual.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after saving what it had; the message says where and how to carry on."""


class StopRequest:
    """A flag that the first Ctrl-C sets while ``armed``; call it to read the flag."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C stops at once

    @contextmanager
    def armed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
