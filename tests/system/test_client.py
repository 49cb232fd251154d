"""namegen_client against a live server (the `server_url` fixture): sync and async, results and errors."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from namegen_client import (
    AsyncNamegenClient,
    BatchLoss,
    NamegenClient,
    NamegenConnectionError,
    NamegenError,
    NamegenStatusError,
    NamegenTimeoutError,
    SampleResult,
    WordLoss,
    transport,
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


def test_readme_client_example_runs_and_prints_what_it_says(tmp_path):
    """The README's example against a server choosing its own default: the values its comments
    show are the ones printed."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT, RunningServer

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL) if "namegen_client" in b
    ]
    server = RunningServer(tmp_path / "server.log", NAMEGEN_DEFAULT_MODEL="").wait_healthy()
    try:
        code = example.replace("http://127.0.0.1:8000", server.url)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "422" in done.stdout
    shown = re.findall(r"# (CharProb\(char='a', prob=[\d.]+)\.\.\.\)", example)
    assert shown and shown[0] in done.stdout, (shown, done.stdout)
    losses = re.findall(r"# ([\d.]+)\.\.\. ([\d.]+)\.\.\.", example)[0]
    assert all(value in done.stdout for value in losses), (losses, done.stdout)


def _replying(*answers: tuple[int, dict[str, str]]):
    """A MockTransport answering each request with the next (status, headers), then 200."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, headers = answers[len(seen) - 1] if len(seen) <= len(answers) else (200, {})
        body = {"status": "ok"} if status == 200 else {"detail": "the server is busy"}
        return httpx.Response(status, json=body, headers=headers)

    return httpx.MockTransport(handler), seen


def test_a_503_is_retried_after_retry_after_then_a_doubling_backoff(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(transport.time, "sleep", waits.append)
    mock, seen = _replying((503, {"Retry-After": "3"}), (503, {}))
    with NamegenClient(client=httpx.Client(transport=mock, base_url="http://t")) as client:
        assert client.health() is True
    assert len(seen) == 3 and waits == [3.0, 1.0]  # Retry-After, then 0.5 s doubled at the 2nd retry

    waits.clear()
    mock, seen = _replying((503, {"Retry-After": "1"}), (503, {"Retry-After": "1"}), (503, {}))
    http = httpx.Client(transport=mock, base_url="http://t")
    with NamegenClient(max_retries=2, client=http) as client, pytest.raises(NamegenStatusError) as busy:
        client.health()
    assert busy.value.status == 503 and len(seen) == 3 and waits == [1.0, 1.0]

    mock, seen = _replying((422, {}))
    http = httpx.Client(transport=mock, base_url="http://t")
    with NamegenClient(client=http) as client, pytest.raises(NamegenStatusError):
        client.health()
    assert len(seen) == 1  # a 4xx is the caller's to fix: never retried


def test_the_async_client_retries_alike(monkeypatch):
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(transport.asyncio, "sleep", no_sleep)
    mock, seen = _replying((503, {"Retry-After": "2"}))

    async def run() -> bool:
        http = httpx.AsyncClient(transport=mock, base_url="http://t")
        async with AsyncNamegenClient(client=http) as client:
            return await client.health()

    assert asyncio.run(run()) is True and waits == [2.0] and len(seen) == 2


def test_transport_failures_are_namegen_errors(monkeypatch):
    monkeypatch.setattr(transport.time, "sleep", lambda seconds: None)
    with socket.socket() as closed:  # a port nothing listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with NamegenClient(url) as client, pytest.raises(NamegenConnectionError) as refused:
        client.health()
    assert refused.value.status is None and "cannot reach the server" in refused.value.message
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with NamegenClient(url, timeout=0.2) as client, pytest.raises(NamegenTimeoutError):
            client.health()
    assert issubclass(NamegenTimeoutError, NamegenConnectionError)
    assert issubclass(NamegenConnectionError, NamegenError) and issubclass(NamegenStatusError, NamegenError)


def test_the_server_comes_from_namegen_url(server_url, monkeypatch):
    monkeypatch.setenv("NAMEGEN_URL", server_url)
    with NamegenClient() as client:
        assert client.health() is True


def test_the_client_is_a_light_distribution_of_its_own():
    """client/ installs with httpx alone, and importing it loads nothing of the service."""
    import subprocess
    import sys
    import tomllib

    from tests.conftest import ROOT

    project = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["httpx"]
    service = "{'torch', 'numpy', 'fastapi', 'app', 'model'}"
    code = f"import sys, namegen_client; print(sorted({{m.split('.')[0] for m in sys.modules}} & {service}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "client")
    assert done.stdout.strip() == "[]", done.stderr


def test_clients_send_constraints_and_read_how_names_were_drawn(server_url):
    constraints = {"ends_with": "lyn", "length": [5, 8]}
    raw = httpx.post(f"{server_url}/sample", json={"n": 4, "seed": 3, "constraints": constraints}).json()
    with NamegenClient(server_url) as client:
        result = client.sample(4, seed=3, constraints=constraints)
        assert [s.name for s in result.names] == [s["name"] for s in raw["names"]]
        assert (
            result.constraint is not None
            and result.constraint.method == raw["constraint"]["method"] == "exact"
        )
        assert result.constraint.p_constraint == raw["constraint"]["p_constraint"]
        assert client.sample(2, seed=3).constraint is None
        conditional = client.next_char("ja", constraints={"ends_with": "n", "length": [4, 5]})
        assert conditional.constraint is not None and conditional.as_dict()["."] == 0.0
        with pytest.raises(NamegenError) as caught:
            client.sample(2, constraints={"length": [5, 3]})
        assert caught.value.status == 422 and "minimum is above the maximum" in caught.value.message

    async def run() -> None:
        async with AsyncNamegenClient(server_url) as client:
            again = await client.sample(4, seed=3, constraints=constraints)
            assert again == result
            smc = await client.next_char("ja", model="names-gru", constraints={"ends_with": "x"}, seed=1)
            assert smc.constraint is not None and smc.constraint.method == "smc" and smc.constraint.ess

    asyncio.run(run())


def test_names_carry_their_percentile_and_fields_a_newer_server_adds_are_ignored(server_url):
    with NamegenClient(server_url) as client:
        names = client.sample(3, seed=2, distinct=True, exclude=["ann"], min_distance=1).names
        assert all(0 <= s.percentile <= 100 and s.novel for s in names)
        assert client.loss("emma").percentile > 50
    from namegen_client import SampledName, _known

    sample = {"name": "ann", "loss": 2.0, "novel": False, "truncated": False, "percentile": 40.0, "later": 1}
    assert _known(SampledName, sample) == SampledName("ann", 2.0, False, False, 40.0)


def test_conditions_and_classify_through_both_clients(server_url):
    gendered, female = "names-gru-gender", {"gender": "female"}
    with NamegenClient(server_url) as client:
        listed = {m.name: m for m in client.models().models}
        assert listed[gendered].conditions == {"gender": ["female", "male"]}
        assert listed["names-mlp"].conditions is None
        got = client.sample(5, model=gendered, seed=3, condition=female)
        raw = httpx.post(
            f"{server_url}/sample", json={"model": gendered, "n": 5, "seed": 3, "condition": female}
        ).json()
        assert [s.name for s in got.names] == [s["name"] for s in raw["names"]]
        raw = httpx.post(f"{server_url}/loss", json={"model": gendered, "word": "emma", "condition": female})
        assert client.loss("emma", model=gendered, condition=female).loss == raw.json()["loss"]
        raw = httpx.post(
            f"{server_url}/next-char", json={"model": gendered, "prefix": "emm", "condition": female}
        )
        want = {d["char"]: d["prob"] for d in raw.json()["distribution"]}
        assert client.next_char("emm", model=gendered, condition=female).as_dict() == want
        assert want != client.next_char("emm", model=gendered).as_dict()
        classified = client.classify(["emma", "john"], model=gendered)
        assert classified.results[0].gender["female"] > 0.9 and classified.results[1].gender["male"] > 0.9
        assert classified.prior["gender"]["female"] + classified.prior["gender"]["male"] == pytest.approx(1)
        with pytest.raises(NamegenError) as caught:
            client.sample(1, model="names-mlp", condition=female)
        assert caught.value.status == 422 and gendered in caught.value.message

    async def run():
        async with AsyncNamegenClient(server_url) as client:
            return await client.classify(["emma", "john"], model=gendered)

    assert asyncio.run(run()) == classified
