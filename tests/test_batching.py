"""Dynamic micro-batching: concurrent callers share batches, each gets its own rows back, failures reach all."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from scribe_rm.batching import MicroBatcher


class Recorder:
    def __init__(self, hold: threading.Event | None = None, fail: bool = False):
        self.batches: list[list[str]] = []
        self.hold = hold
        self.fail = fail

    def __call__(self, items: list[str]) -> list[str]:
        if self.hold is not None:
            self.hold.wait(5)
        self.batches.append(items)
        if self.fail:
            raise RuntimeError("model crashed")
        return [item.upper() for item in items]


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown()


async def test_calls_within_the_window_share_one_batch(executor):
    run = Recorder()
    batcher = MicroBatcher(run, executor, batch_size=64, window_s=0.05)
    results = await asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}"]) for i in range(5)))
    assert run.batches == [[f"{x}{i}" for i in range(5) for x in "ab"]]
    assert results == [[f"A{i}", f"B{i}"] for i in range(5)]


async def test_calls_arriving_during_a_batch_form_the_next_one_up_to_batch_size(executor):
    hold = threading.Event()
    run = Recorder(hold)
    batcher = MicroBatcher(run, executor, batch_size=4, window_s=0.0)
    first = asyncio.ensure_future(batcher.submit(["x"]))
    await asyncio.sleep(0.05)  # the first batch is now running (held)
    rest = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(6)]
    await asyncio.sleep(0.05)
    hold.set()
    assert await first == ["X"]
    assert [await r for r in rest] == [[f"T{i}"] for i in range(6)]
    assert [len(b) for b in run.batches] == [1, 4, 2]  # queued while busy: full batches, no window


async def test_a_failed_batch_fails_every_caller_and_the_next_batch_runs(executor):
    run = Recorder(fail=True)
    batcher = MicroBatcher(run, executor, batch_size=64, window_s=0.01)
    outcomes = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    run.fail = False
    assert await batcher.submit(["c"]) == ["C"]


async def test_a_cancelled_caller_does_not_disturb_the_others(executor):
    hold = threading.Event()
    batcher = MicroBatcher(Recorder(hold), executor, batch_size=64, window_s=0.01)
    gone = asyncio.ensure_future(batcher.submit(["gone"]))
    kept = asyncio.ensure_future(batcher.submit(["kept"]))
    await asyncio.sleep(0.05)
    gone.cancel()
    hold.set()
    assert await kept == ["KEPT"]
