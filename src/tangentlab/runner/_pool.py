"""The local process pool: one ``spawn`` process per worker, one run at a time each, driven over a pipe.

Written for the faults a long sweep meets, which ``concurrent.futures`` handles badly:

- a worker that dies (``kill -9``, the out-of-memory killer) fails only the run it was computing, with the cause
  ("worker killed by signal 9 (SIGKILL)"); a fresh worker takes its place and the sweep goes on;
- when the driver stops (SIGINT, SIGTERM, an error), :meth:`Pool.terminate` ends every worker at once (SIGTERM,
  then SIGKILL after a second) instead of letting them compute runs nobody will store;
- workers ignore SIGINT (a Ctrl-C in a terminal reaches the whole process group): the driver decides;
- on Linux a worker gets SIGTERM from the kernel if the driver dies without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any


class _Worker:
    def __init__(self, context: Any, args: tuple[Any, ...]) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, *args), daemon=True)
        with (
            _sigint_ignored()
        ):  # inherited through exec: the worker ignores Ctrl-C from its first instruction
            self.process.start()
        child.close()
        self.task: Any = None  # the run it is computing, or None when idle

    def stop(self, timeout: float) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(1.0)
        self.conn.close()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def serve(
    conn: Connection,
    driver_pid: int,
    init: Callable[[], None],
    work: Callable[[Any], Any],
    unsendable: Callable[[Any, str], Any],
) -> None:
    """A worker's loop: receive a task, send back ``work(task)``, until the driver sends None or goes away.

    A result that cannot be pickled is replaced by ``unsendable(task, traceback)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_driver(driver_pid)
    init()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        result = work(task)
        try:
            conn.send(result)
        except Exception:  # the result does not pickle: send the reason instead
            conn.send(unsendable(task, traceback.format_exc()))


def _die_with_driver(driver_pid: int) -> None:
    """On Linux, have the kernel send this worker SIGTERM when the driver dies.

    A driver killed mid-sweep (SIGKILL, out of memory) cannot shut its pool down; without this its workers would go
    on computing runs that nobody will store. Elsewhere a worker notices only when it next talks to the driver.
    """
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1  # from <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != driver_pid:  # the driver died before prctl took effect
        os._exit(1)


def death_cause(exitcode: int | None) -> str:
    """``"worker killed by signal 9 (SIGKILL)"`` / ``"worker exited with code 3"``."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"worker killed by signal {-exitcode} ({name})"
    return f"worker exited with code {exitcode} before returning its result"


def run_pool(
    tasks: Sequence[Any],
    *,
    workers: int,
    args: tuple[Any, ...],
    on_death: Callable[[Any, str], Any],
) -> Iterator[Any]:
    """Hand ``tasks`` to ``workers`` processes running :func:`serve` ``(conn, *args)``; yield each result as it
    arrives.

    A task whose worker died yields ``on_death(task, cause)`` and the worker is replaced. Closing the generator
    (or an exception in the caller) terminates every worker.
    """
    context = multiprocessing.get_context("spawn")
    queue = deque(tasks)
    pool: list[_Worker] = []

    def hand(worker: _Worker) -> bool:
        worker.task = queue.popleft()
        try:
            worker.conn.send(worker.task)
        except OSError:  # it died while idle: the task never started; put it back
            queue.appendleft(worker.task)
            worker.task = None
            return False
        return True

    try:
        while queue or any(w.task is not None for w in pool):
            for worker in list(pool):
                if worker.task is None and queue and not hand(worker):
                    worker.stop(0.0)
                    pool.remove(worker)
            while queue and len(pool) < workers:
                worker = _Worker(context, args)
                pool.append(worker)
                hand(worker)
            busy = [w for w in pool if w.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                result, task = None, worker.task
                if worker.conn.poll():
                    with contextlib.suppress(EOFError, OSError):
                        result = worker.conn.recv()
                if result is not None:
                    worker.task = None
                    yield result
                    continue
                worker.process.join(5.0)
                cause = death_cause(worker.process.exitcode)
                worker.stop(0.0)
                pool.remove(worker)
                yield on_death(task, cause)
    finally:
        for worker in pool:  # idle ones may finish cleanly; busy ones are ended at once
            if worker.task is None and worker.process.is_alive():
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in pool:
            if worker.task is None:
                worker.process.join(1.0)
            worker.stop(0.5)
