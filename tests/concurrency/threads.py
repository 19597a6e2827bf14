"""Run callables in real threads, each with its own database connection, started together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction

JOIN_TIMEOUT = 120


@dataclass
class Outcome:
    """What one thread's callable returned, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_concurrently(*work: Callable[[], Any], timeout: float = JOIN_TIMEOUT) -> list[Outcome]:
    """Start one thread per callable, release them at once on a barrier, wait for all.

    Each thread opens its own connection (Django connections are per thread) and closes it at
    the end, so the test database can be flushed afterwards. A thread still running after
    `timeout` seconds fails the test: a lock wait that never ends is a deadlock for the user.
    """
    barrier = threading.Barrier(len(work))
    outcomes = [Outcome() for _ in work]

    def run(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            outcomes[index].value = job()
        except BaseException as error:  # the test inspects every failure itself
            outcomes[index].error = error
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(index, job), daemon=True, name=f"ledger-worker-{index}")
        for index, job in enumerate(work)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running after {timeout} s (deadlock?): {stuck}"
    return outcomes


def unexpected(outcomes: list[Outcome], *allowed: type[BaseException]) -> list[BaseException]:
    """The errors of `outcomes` that are not instances of the `allowed` types."""
    return [o.error for o in outcomes if o.error is not None and not isinstance(o.error, allowed)]


class HeldOpen:
    """Run `write` in a thread's transaction and keep that transaction open until `finish()`."""

    def __init__(self, write: Callable[[], object]) -> None:
        self.write = write
        self.written = threading.Event()
        self.may_commit = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with transaction.atomic():
                self.write()
                self.written.set()
                assert self.may_commit.wait(120), "the test never let the write commit"
        except BaseException as error:  # reported by finish()
            self.error = error
            self.written.set()
        finally:
            connections.close_all()

    def __enter__(self) -> HeldOpen:
        self.thread.start()
        assert self.written.wait(30), "the write did not run"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc_info) -> None:
        self.finish()

    def finish(self) -> None:
        self.may_commit.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
