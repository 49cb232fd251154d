"""Model work runs inline when short and table-backed, else on at most `threads` workers."""

import asyncio
import os
import threading
import time

from app.workers import ModelRunner


def test_small_table_work_runs_inline_and_big_work_on_a_worker(tiny_model):
    runner = ModelRunner(tiny_model, threads=2)
    assert tiny_model.uses_table

    async def where() -> tuple[int, int, int]:
        return (
            threading.get_ident(),
            await runner.run(True, threading.get_ident),
            await runner.run(False, threading.get_ident),
        )

    loop_thread, small, big = asyncio.run(where())
    assert small == loop_thread != big


def test_workers_are_capped_at_threads(tiny_model):
    runner = ModelRunner(tiny_model, threads=2)
    running, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def many() -> None:
        await asyncio.gather(*(runner.run(False, work) for _ in range(8)))

    asyncio.run(many())
    assert most == 2


def test_default_workers_are_the_usable_cores(tiny_model):
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert ModelRunner(tiny_model).threads == expected >= 1
