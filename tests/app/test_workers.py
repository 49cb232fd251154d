"""Model work runs inline when short and table-backed, else on at most `threads` workers."""

import asyncio
import threading
import time

from app.serving.processes import ModelCall
from app.serving.workers import ModelRunner

WHERE = ModelCall("where")  # the thread a model's work ran on (each test gives its models `where`)


def test_small_table_work_runs_inline_and_big_work_on_a_worker(tiny_model, forward_tiny_model, monkeypatch):
    runner = ModelRunner(threads=2, max_queue=16)
    for model in (tiny_model, forward_tiny_model):
        monkeypatch.setattr(model, "where", threading.get_ident, raising=False)
    assert tiny_model.rows_independent and not forward_tiny_model.rows_independent

    async def where() -> tuple[int, ...]:
        return (
            threading.get_ident(),
            await runner.run(tiny_model, WHERE, names=10),
            await runner.run(tiny_model, WHERE, names=10**6),
            await runner.run(tiny_model, WHERE, words=10**6),
            await runner.run(forward_tiny_model, WHERE, names=1),
        )

    loop_thread, small, many_names, many_words, forward = asyncio.run(where())
    assert small == loop_thread
    assert loop_thread not in (many_names, many_words, forward)


def test_workers_are_capped_at_threads(forward_tiny_model, monkeypatch):
    runner = ModelRunner(threads=2, max_queue=16)
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

    monkeypatch.setattr(forward_tiny_model, "work", work, raising=False)

    async def many() -> None:
        await asyncio.gather(*(runner.run(forward_tiny_model, ModelCall("work")) for _ in range(8)))

    asyncio.run(many())
    assert most == 2
