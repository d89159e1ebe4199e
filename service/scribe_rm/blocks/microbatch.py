"""Dynamic micro-batching of a blocking batch function across concurrent async callers.

One batch runs at a time in the given executor. Calls arriving while it runs form the next batch (up to
`batch_size` items), which starts the moment the running one ends; when the worker is idle, a call waits
up to `window_s` for others to join it. Under load the batches fill up without any added wait.

A batch mixes callers, so one caller's input that makes the batch function raise must not fail the
others: a failed batch is split in halves and retried until only the inputs that fail alone remain;
each of those comes back as an `ItemFailed` in its place of the result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

Row = TypeVar("Row")


class ItemFailed(Exception):
    """The batch function raised on this input even when it ran alone."""

    def __init__(self, cause: Exception):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class MicroBatcher(Generic[Row]):
    def __init__(self, run_batch: Callable[[list[str]], Sequence[Row]], executor: Executor, batch_size: int,
                 window_s: float):
        self.run_batch = run_batch  # one result row per input, in order
        self.executor = executor
        self.batch_size = batch_size
        self.window_s = window_s
        self._pending: list[tuple[list[str], asyncio.Future[list[Row | ItemFailed]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, items: list[str]) -> list[Row | ItemFailed]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # state left by a closed loop (tests run one loop each) would hang us
            self._pending, self._timer, self._running, self._loop = [], None, None, loop
        future: asyncio.Future[list[Row | ItemFailed]] = loop.create_future()
        self._pending.append((list(items), future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._running is not None:
            return  # the running batch starts the next one when it ends
        if sum(len(chunk) for chunk, _ in self._pending) >= self.batch_size:
            self._start_batch()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._start_batch)

    def _start_batch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch: list[tuple[list[str], asyncio.Future[list[Row | ItemFailed]]]] = []
        size = 0
        while self._pending and (not batch or size + len(self._pending[0][0]) <= self.batch_size):
            chunk = self._pending.pop(0)
            batch.append(chunk)
            size += len(chunk[0])
        if batch:
            self._running = asyncio.get_running_loop().create_task(self._run(batch))

    def _run_isolating(self, items: list[str]) -> list[Row | ItemFailed]:
        """`run_batch(items)`; when it raises, each half again, down to the inputs that fail alone."""
        try:
            return list(self.run_batch(items))
        except Exception as exc:
            if len(items) == 1:
                return [ItemFailed(exc)]
            half = len(items) // 2
            return self._run_isolating(items[:half]) + self._run_isolating(items[half:])

    async def _run(self, batch: list[tuple[list[str], asyncio.Future[list[Row | ItemFailed]]]]) -> None:
        items = [item for chunk, _ in batch for item in chunk]
        try:
            rows = await asyncio.get_running_loop().run_in_executor(self.executor, self._run_isolating, items)
        except Exception as exc:  # the executor itself failed (e.g. shut down): tell every waiter
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            start = 0
            for chunk, future in batch:
                if not future.done():
                    future.set_result(rows[start : start + len(chunk)])
                start += len(chunk)
        finally:
            self._running = None
            if self._pending:
                self._start_batch()  # these waited through a whole batch already: no window
