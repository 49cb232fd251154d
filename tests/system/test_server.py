"""Against a real uvicorn process started with the container's exact command."""

import asyncio
import time

import httpx
import pytest

from tests.app.test_app import BAD_REQUESTS


def test_every_endpoint_over_real_http(server_url):
    assert httpx.get(f"{server_url}/health").json() == {"status": "ok"}
    info = httpx.get(f"{server_url}/model").json()
    assert info["device"] == "cpu" and info["metrics"]["val_loss"] <= 2.17
    names = httpx.post(f"{server_url}/sample", json={"n": 4, "seed": 1}).json()["names"]
    assert len(names) == 4
    dist = httpx.post(f"{server_url}/next-char", json={"prefix": "a"}).json()["distribution"]
    assert sum(d["prob"] for d in dist) == pytest.approx(1.0, abs=1e-6)
    loss = httpx.post(f"{server_url}/loss", json={"words": [n["name"] for n in names]}).json()
    assert [r["loss"] for r in loss["results"]] == pytest.approx([n["loss"] for n in names], abs=1e-9)
    assert httpx.get(f"{server_url}/docs").status_code == 200


@pytest.mark.parametrize("path,kwargs,status,message", BAD_REQUESTS)
def test_bad_input_over_real_http(server_url, path, kwargs, status, message):
    response = httpx.post(f"{server_url}{path}", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.text
    assert httpx.get(f"{server_url}/health").status_code == 200


def test_seeded_samples_repeat_under_64_concurrent_requests(server_url):
    requests = [{"n": 20, "seed": i % 8, "temperature": 1.3, "top_k": 10} for i in range(64)]

    async def fire() -> list[dict]:
        async with httpx.AsyncClient(base_url=server_url, timeout=60) as c:
            responses = await asyncio.gather(*(c.post("/sample", json=r) for r in requests))
        return [r.json() for r in responses]

    sequential = [httpx.post(f"{server_url}/sample", json=r).json() for r in requests[:8]]
    concurrent = asyncio.run(fire())
    for i, body in enumerate(concurrent):
        assert body == sequential[i % 8]
    assert len({tuple(n["name"] for n in b["names"]) for b in sequential}) == 8


def test_health_answers_within_half_a_second_while_heavy_requests_run(server_url):
    # The transformer's 1,000 distinct novel names: seconds for 16 (top_k=1 would stop at once:
    # one name only, nothing to draw).
    heavy = {"n": 1000, "novel": True, "model": "names-transformer"}

    async def run() -> tuple[list[int], list[float]]:
        async with httpx.AsyncClient(base_url=server_url, timeout=120) as c:
            work = [asyncio.create_task(c.post("/sample", json=heavy)) for _ in range(16)]
            waits = []
            async with httpx.AsyncClient(base_url=server_url, timeout=10) as probe:
                await asyncio.sleep(0.05)  # the heavy requests are in
                for _ in range(200):  # bounded: at most about 20 s of probing
                    if all(task.done() for task in work):
                        break
                    start = time.perf_counter()
                    assert (await probe.get("/health")).status_code == 200
                    waits.append(time.perf_counter() - start)
                    await asyncio.sleep(0.1)
            statuses = [(await task).status_code for task in work]
        return statuses, waits

    statuses, waits = asyncio.run(run())
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert waits, "the heavy requests finished before /health was probed"
    print(f"\n/health during 16 heavy requests: {len(waits)} probes, slowest {max(waits) * 1000:.0f} ms")
    assert max(waits) < 0.5
