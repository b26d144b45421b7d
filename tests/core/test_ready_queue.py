"""The ready queue, read by the director while driver threads append to it."""

from __future__ import annotations

import sys
import threading

from interlace._core.loop import ControlledLoop

# long enough that a walk over it spans many thread switches
QUEUED = 2_000
READS = 300


def _noop() -> None:
    pass


def test_ready_callbacks_is_a_snapshot_while_a_thread_appends() -> None:
    # aiosqlite's worker thread queues results with call_soon_threadsafe, which appends
    # to the loop's ready deque at any moment; a walk over the live deque then fails
    # with "deque mutated during iteration". A tiny switch interval makes the thread
    # run between almost any two bytecodes of the reader.
    loop = ControlledLoop()
    stop = threading.Event()

    def append_until_stopped() -> None:
        while not stop.is_set():
            loop.call_soon_threadsafe(_noop)

    for _ in range(QUEUED):
        loop.call_soon(_noop)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=append_until_stopped)
    thread.start()
    try:
        for _ in range(READS):
            assert len(loop.ready_callbacks()) >= QUEUED
            ready = loop._ready  # type: ignore[attr-defined]
            while len(ready) > 2 * QUEUED:  # keep the walk the same length
                ready.pop()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
        loop.close()
