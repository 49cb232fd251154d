"""namegen_client against a live server (the `server_url` fixture): sync and async, results and errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from namegen_client import (
    AsyncNamegenClient,
    BatchLoss,
    NamegenClient,
    NamegenError,
    SampleResult,
    WordLoss,
)


def test_sync_client_matches_the_api(server_url):
    with NamegenClient(server_url) as client:
        assert client.health() is True
        listed = client.models()
        assert listed.default == "names-mlp"
        assert {m.name for m in listed.models} >= {"names-mlp"}
        assert client.model().name == "names-mlp" and client.model().device == "cpu"
        assert client.model("names-mlp").parameters == 17697

        result = client.sample(5, seed=42, prefix="ka", temperature=0.8, top_k=10, max_length=10)
        assert isinstance(result, SampleResult) and result.complete and result.model == "names-mlp"
        raw = httpx.post(f"{server_url}/sample", json={"n": 5, "seed": 42, "prefix": "ka", "temperature": 0.8,
                                                       "top_k": 10, "max_length": 10}).json()  # fmt: skip
        assert [(s.name, s.loss) for s in result.names] == [(s["name"], s["loss"]) for s in raw["names"]]

        dist = client.next_char("emm", model="names-mlp")
        assert dist.prefix == "emm" and len(dist.distribution) == 27
        assert sum(dist.as_dict().values()) == pytest.approx(1)

        one = client.loss("emma")
        assert isinstance(one, WordLoss) and [c.char for c in one.chars] == list("emma.")
        many = client.loss(["emma", "xqzv"])
        assert isinstance(many, BatchLoss) and many.predictions == 10
        assert many.results[0].loss == pytest.approx(one.loss)


def test_errors_carry_status_detail_and_request_id(server_url):
    with NamegenClient(server_url) as client:
        with pytest.raises(NamegenError) as bad_char:
            client.loss("emm4")
        assert bad_char.value.status == 422
        assert "outside the alphabet" in bad_char.value.message
        assert bad_char.value.request_id
        with pytest.raises(NamegenError) as unknown:
            client.sample(2, model="nope")
        assert unknown.value.status == 422 and "names-mlp" in str(unknown.value)
        with pytest.raises(NamegenError) as missing:
            client.model("no such model")
        assert missing.value.status == 404 and "unknown model" in missing.value.detail
        with pytest.raises(NamegenError) as too_many:
            client.sample(5000)
        assert too_many.value.status == 422 and too_many.value.message.startswith("n:")


def test_async_client_matches_the_sync_one(server_url):
    async def run():
        async with AsyncNamegenClient(server_url) as client:
            results = await asyncio.gather(*(client.sample(3, seed=s) for s in range(4)))
            return (
                await client.health(),
                (await client.models()).default,
                results,
                await client.next_char(""),
                await client.loss(["emma"]),
            )

    healthy, default, results, dist, batch = asyncio.run(run())
    with NamegenClient(server_url) as client:
        assert healthy and default == "names-mlp"
        assert results == [client.sample(3, seed=s) for s in range(4)]  # same seeds, same names
        assert dist == client.next_char("")
        assert batch == client.loss(["emma"])

    async def failing():
        async with AsyncNamegenClient(server_url) as client:
            await client.next_char("a b")

    with pytest.raises(NamegenError) as error:
        asyncio.run(failing())
    assert error.value.status == 422


def test_readme_client_example_runs(server_url):
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL) if "namegen_client" in b
    ]
    code = example.replace("http://127.0.0.1:8000", server_url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "422" in done.stdout and "CharProb(char='a'" in done.stdout
