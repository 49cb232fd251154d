"""Model processes answer with the server's bytes, stop when told, and survive a killed process."""

import asyncio
import logging
import os
import pickle
import signal
import threading

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.serving import processes as processes_module
from app.serving.processes import ModelCall, ModelProcesses, ProcessLost, default_process_count
from app.serving.rendered import rendered
from app.settings import Settings
from model.engine.cancel import Cancelled, OverBudget, bounded
from model.engine.constraints.spec import Constraints
from model.engine.language_model import LanguageModel
from model.engine.params import ParameterError, SamplingParams
from tests.conftest import ROOT

WEIGHTS = ROOT / "weights"
MODELS = ("names-gru-distilled", "names-gru-gender", "names-transformer")


@pytest.fixture(scope="module")
def models() -> dict[str, LanguageModel]:
    loaded = {
        name: LanguageModel.from_checkpoint(WEIGHTS / f"{name}.safetensors", device="cpu") for name in MODELS
    }
    for model in loaded.values():
        assert model.check_batching() == "exact"
    return loaded


@pytest.fixture(scope="module")
def processes(models):
    started = ModelProcesses.start(2, models, slots=8)
    assert started is not None, "the processes should give this process's bytes"
    yield started
    started.close()


def run(processes: ModelProcesses, model: LanguageModel, call: ModelCall, **kwargs):
    return asyncio.run(processes.run(model, call, **kwargs))


CALLS = [
    ("names-gru-distilled", ModelCall("sample_batch", ([(300, 1), (1, 2), (37, 3)], SamplingParams()))),
    (
        "names-gru-distilled",
        ModelCall("sample", (40, SamplingParams(prefix="ma", temperature=0.7), 5), {"novel": True}),
    ),
    (
        "names-gru-distilled",
        ModelCall("sample", (20, SamplingParams(), 6), {"constraints": Constraints(ends_with="lyn")}),
    ),
    ("names-gru-distilled", ModelCall("word_losses", (["emma", "christopher", "x"] * 30,))),
    ("names-gru-distilled", ModelCall("next_chars", (["", "ka", "zzz", "emm"],))),
    ("names-gru-gender", ModelCall("classify", (["emma", "noah", "kim"],))),
    ("names-gru-gender", ModelCall("sample_batch", ([(50, 9)], SamplingParams(), {"gender": "female"}))),
    ("names-transformer", ModelCall("sample_batch", ([(64, 4)], SamplingParams(top_k=5)))),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[f"{n}-{c.method}" for n, c in CALLS])
def test_a_process_answers_with_the_bytes_computed_here(processes, models, name, call):
    """Sampled names come back as their JSON (`app.serving.rendered`): floats in their shortest
    round-trip form, so equal JSON bytes are equal floats to the last bit."""
    model = models[name]
    here = call(model)
    there = run(processes, model, call)
    assert pickle.dumps(there) == pickle.dumps(rendered(call.method, here))
    if call.method.startswith("sample"):
        assert there == here  # and parsed back, the same Samples


def test_both_processes_take_work_and_the_least_busy_gets_the_next_job(processes, models):
    model = models["names-gru-distilled"]
    call = ModelCall("sample_batch", ([(2000, 1)], SamplingParams()))

    async def two_at_once():
        return await asyncio.gather(processes.run(model, call), processes.run(model, call))

    first, second = asyncio.run(two_at_once())
    assert first == second
    assert [p.jobs for p in processes.processes] == [0, 0]
    assert len(set(processes.pids())) == 2


def test_an_engine_error_arrives_whole(processes, models):
    model = models["names-gru-distilled"]
    call = ModelCall("word_losses", (["emma", "a1", "b!"],))
    with pytest.raises(ParameterError) as here:
        call(model)
    with pytest.raises(ParameterError) as there:
        run(processes, model, call)
    assert there.value.problems == here.value.problems and len(here.value.problems) == 2


def test_the_cost_bound_stops_a_job_as_on_a_thread(processes, models):
    model = models["names-transformer"]
    call = ModelCall("sample_batch", ([(1000, 1)], SamplingParams()))
    with pytest.raises(OverBudget) as here, bounded(None, 0.05):
        call(model)
    with pytest.raises(OverBudget) as there:
        run(processes, model, call, budget=0.05)
    assert there.value.budget == here.value.budget == 0.05
    assert str(there.value) == str(here.value)


def test_a_job_whose_clients_have_gone_stops_at_its_next_step(processes, models):
    model = models["names-transformer"]
    call = ModelCall("sample_batch", ([(1000, seed) for seed in range(8)], SamplingParams()))  # seconds
    gone = threading.Event()
    threading.Timer(0.2, gone.set).start()
    with pytest.raises(Cancelled):
        run(processes, model, call, gone=gone)
    # its slot is free again and unset: the next job runs to the end
    assert run(processes, models["names-gru-distilled"], CALLS[0][1]) == CALLS[0][1](
        models["names-gru-distilled"]
    )
    assert sorted(processes.free_slots) == list(range(8))


def test_a_killed_process_fails_its_job_with_process_lost_and_is_started_again(processes, models):
    model = models["names-transformer"]
    before = processes.pids()

    async def kill_during_job():
        job = asyncio.ensure_future(
            processes.run(
                model, ModelCall("sample_batch", ([(1000, seed) for seed in range(8)], SamplingParams()))
            )
        )
        await asyncio.sleep(0.2)
        busy = next(p for p in processes.processes if p.jobs)
        os.kill(before[processes.processes.index(busy)], signal.SIGKILL)
        return await job

    with pytest.raises(ProcessLost):
        asyncio.run(kill_during_job())
    after = processes.pids()
    assert len(set(after) - set(before)) == 1  # one replaced, the other still the same
    call = CALLS[0][1]
    assert pickle.dumps(run(processes, models["names-gru-distilled"], call)) == pickle.dumps(
        rendered(call.method, call(models["names-gru-distilled"]))
    )


def test_processes_that_answer_other_bytes_are_not_used(models, monkeypatch, caplog):
    # the server's own digests change here; the processes (forked from the forkserver) keep theirs
    monkeypatch.setattr(processes_module, "answers_digest", lambda model: "other bytes")
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        assert ModelProcesses.start(1, models, slots=4) is None
    assert "model processes off" in caplog.text and "names-gru-distilled" in caplog.text


def test_no_processes_for_one_worker_or_tables_alone(tiny_model):
    assert [default_process_count(w) for w in (1, 2, 3, 16)] == [0, 2, 3, 4]
    assert ModelProcesses.start(2, {"table": tiny_model}, slots=4) is None


def test_the_server_sends_big_passes_to_its_processes_and_answers_the_same(tmp_path):
    weights = WEIGHTS / "names-gru-distilled.safetensors"
    bodies = [{"n": 500, "seed": 3}, {"n": 40, "seed": 4, "novel": True}]
    answers = {}
    for count in (2, 0):
        with TestClient(create_app(Settings(weights=weights, device="cpu", processes=count))) as client:
            service = client.app.state.service
            assert (service.runner.processes is not None) == (count > 0)
            answers[count] = [client.post("/sample", json=body).content for body in bodies]
            answers[count].append(client.post("/loss", json={"words": ["emma"] * 200}).content)
            if count:
                assert [service.runner.passes_now(service.default, k) for k in range(5)] == [4, 3, 2, 1, 0]
    assert answers[2] == answers[0]
    assert all(b'"names"' in a or b'"words"' in a or b"loss" in a for a in answers[2])


def test_processes_that_cannot_start_leave_the_work_to_threads(tiny_checkpoint, tmp_path, caplog):
    copy = tmp_path / "gone.safetensors"
    copy.write_bytes(tiny_checkpoint.read_bytes())
    model = LanguageModel.from_checkpoint(copy, device="cpu", max_table_entries=0)  # a forward pass
    model.check_batching()
    copy.unlink()  # the processes cannot load it
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        assert ModelProcesses.start(1, {"gone": model}, slots=4) is None
    assert "model processes off" in caplog.text and "failed to start" in caplog.text


def test_a_job_bigger_than_the_pipe_waits_without_blocking_the_loop(processes, models):
    """While both processes compute, a job of about 200 KB goes down only as far as the pipe's
    buffer lets it; the rest waits for room while the loop goes on, and both jobs get the right answers."""
    model = models["names-gru-distilled"]
    slow = ModelCall("sample_batch", ([(500, seed) for seed in range(2)], SamplingParams()))
    words = [f"name{'a' * (seed % 9)}" for seed in range(20_000)]  # about 200 KB pickled
    big = ModelCall("word_losses", (words,))

    async def both():
        jobs = [asyncio.ensure_future(processes.run(models["names-transformer"], slow)) for _ in range(2)]
        await asyncio.sleep(0.1)  # both processes are busy
        scored = asyncio.ensure_future(processes.run(model, big))
        await asyncio.sleep(0)
        waiting = [len(p.outgoing) for p in processes.processes]
        ticks = 0
        while not scored.done():  # the loop keeps turning while the job waits and runs
            ticks += 1
            await asyncio.sleep(0.001)
        return await asyncio.gather(*jobs), await scored, waiting, ticks

    (first, second), losses, waiting, ticks = asyncio.run(both())
    assert max(waiting) > 0, "the job should not have fit in the pipe at once"
    assert ticks > 10
    assert losses == big(model)
    assert first == second and len(first) == 2 and [len(names) for names in first] == [500, 500]
    assert all(not p.outgoing for p in processes.processes)


def test_a_long_word_list_is_scored_in_parts_side_by_side_with_the_same_bytes():
    """700 words with two idle processes: parts of 512 and 188 words (whole 256-word passes), one in
    each process, answered with the bytes of the whole list scored on a thread; bad words in both
    parts are one 422 naming each by its index in the request."""
    weights = WEIGHTS / "names-gru-distilled.safetensors"
    words = [f"{'abcdefghij'[i % 10]}{'aeiou' * (1 + i % 3)}n" for i in range(700)]
    bad = list(words)
    bad[3], bad[650] = "x1", "y!"
    answers, problems, parts = {}, {}, []
    for count in (2, 0):
        with TestClient(create_app(Settings(weights=weights, device="cpu", processes=count))) as client:
            runner = client.app.state.service.runner
            if count:
                default = client.app.state.service.default
                assert runner.parts(default, 700) == [(0, 512), (512, 700)]
                assert runner.parts(default, 256) == [(0, 256)]  # one pass: one part
                processes = runner.processes
                processes.jobs = lambda number: number == 0  # process 0 busy: no part for it
                assert runner.parts(default, 700) == [(0, 700)]
                del processes.jobs

                async def spy(model, call, run=runner.run, **kwargs):
                    parts.append((call.kwargs.get("first"), len(call.args[0])))
                    return await run(model, call, **kwargs)

                runner.run = spy
            answers[count] = client.post("/loss", json={"words": words}).content
            response = client.post("/loss", json={"words": bad})
            assert response.status_code == 422
            problems[count] = [(item["loc"], item["msg"]) for item in response.json()["detail"]]
    assert answers[2] == answers[0]
    assert sorted(parts[:2]) == [(0, 512), (512, 188)]
    assert problems[2] == problems[0]
    assert [loc for loc, _ in problems[0]] == [["body", "words", 3], ["body", "words", 650]]
