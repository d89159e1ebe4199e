"""Dynamic micro-batching: concurrent callers share batches, each gets its own rows back, and one caller's
bad input fails only that input."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from scribe_rm.blocks.microbatch import ItemFailed, MicroBatcher


class Recorder:
    """Upper-cases its inputs; raises on the whole batch when `fail` is set or when any input contains `poison`."""

    def __init__(self, hold: threading.Event | None = None, fail: bool = False, poison: str = "POISON"):
        self.batches: list[list[str]] = []
        self.hold = hold
        self.fail = fail
        self.poison = poison

    def __call__(self, items: list[str]) -> list[str]:
        if self.hold is not None:
            self.hold.wait(5)
        self.batches.append(items)
        if self.fail:
            raise RuntimeError("model crashed")
        if any(self.poison in item for item in items):
            raise TypeError("tokenizer rejected an input")
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


async def test_a_poisoned_input_fails_alone_and_its_batch_mates_get_their_rows(executor):
    run = Recorder()
    batcher = MicroBatcher(run, executor, batch_size=64, window_s=0.05)
    calls = [[f"c{i}-a", f"c{i}-b"] for i in range(39)] + [["fine", "POISON pill", "also fine"]]
    results = await asyncio.gather(*(batcher.submit(items) for items in calls))
    assert results[:39] == [[f"C{i}-A", f"C{i}-B"] for i in range(39)]  # every innocent caller is whole
    fine, failed, also_fine = results[39]
    assert (fine, also_fine) == ("FINE", "ALSO FINE")
    assert isinstance(failed, ItemFailed) and isinstance(failed.cause, TypeError)
    assert "tokenizer rejected" in str(failed)
    assert len(run.batches) <= 2 * 7 + 1  # halving finds one bad input in O(log n) retries, not n


async def test_a_batch_that_always_fails_gives_each_input_its_failure_and_the_next_batch_runs(executor):
    run = Recorder(fail=True)
    batcher = MicroBatcher(run, executor, batch_size=64, window_s=0.01)
    outcomes = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
    assert all(isinstance(o[0], ItemFailed) and isinstance(o[0].cause, RuntimeError) for o in outcomes)
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
