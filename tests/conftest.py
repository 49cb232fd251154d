"""Shared fixtures: small generated word lists and a tiny checkpoint trained on one."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_WORDS = ROOT.parent / "shared" / "data" / "names.txt"
DEFAULT_CHECKPOINT = ROOT / "weights" / "names-mlp.safetensors"

needs_reference_words = pytest.mark.skipif(
    not REFERENCE_WORDS.is_file(), reason=f"reference word list {REFERENCE_WORDS} is absent"
)


def generate_words(count: int, seed: int = 0) -> list[str]:
    """Distinct pronounceable made-up words (consonant-vowel syllables), reproducible by seed."""
    rng = random.Random(seed)
    consonants, vowels = "bdklmnrstvz", "aeiou"
    words: dict[str, None] = {}
    while len(words) < count:
        syllables = rng.randint(1, 4)
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
        if rng.random() < 0.3:
            word += rng.choice("nrs")
        words[word] = None
    return list(words)


def generated_gender_counts(words: list[str]) -> list[tuple[str, str, int]]:
    """SSA-like rows for generated words: '-a' names mostly female, '-o' mostly male, '-e' mixed,
    the rest absent (unlabelled); plus rows for names outside the list, which must be ignored."""
    rows = [("Zzzyx", "F", 40), ("Qwop", "M", 7)]
    for word in words:
        name = word.capitalize()
        if word.endswith("a"):
            rows += [(name, "F", 95), (name, "M", 5)]
        elif word.endswith("o"):
            rows += [(name, "F", 3), (name, "M", 60), (name, "M", 37)]  # two years: counts add up
        elif word.endswith("e"):
            rows += [(name, "F", 50), (name, "M", 50)]
    return rows


@pytest.fixture(scope="session")
def gender_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small conditional GRU trained on generated words with generated gender labels."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.families import get_family
    from model.labels import table_from_counts
    from model.training.run import WordSource, train_model

    words = generate_words(600, seed=3)
    torch.set_num_threads(1)  # as `python -m model.train` does: more threads crawl on a busy machine
    folder = tmp_path_factory.mktemp("gender")
    path = folder / "words.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    table = table_from_counts(words, generated_gender_counts(words), "generated", "0")
    family = get_family("gru")
    config = {"n_embd": 16, "n_hidden": 48, "condition": "gender", "condition_values": "female,male",
              "condition_guidance": 1.0}  # fmt: skip
    recipe = family.recipe.with_(steps=800, eval_every=400)
    trained = train_model(
        family, config, recipe, WordSource(words, path, "generated"), torch.device("cpu"),
        {"command": "test"}, progress=False, labels=table,
    )  # fmt: skip
    out = folder / "tiny-gender.safetensors"
    save_checkpoint(out, trained.checkpoint)
    return out, table


@pytest.fixture(scope="session")
def small_word_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("words") / "words.txt"
    path.write_text("\n".join(generate_words(400)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(small_word_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained for a few hundred steps on the generated word list."""
    from model.train import main

    out = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    args = [
        "--family",
        "mlp",
        "--data",
        str(small_word_file),
        "--out",
        str(out),
        "--steps",
        "600",
        "--n-hidden",
        "64",
        "--batch-size",
        "64",
        "--eval-every",
        "200",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path):
    from model.engine.language_model import LanguageModel

    return LanguageModel.from_checkpoint(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="session")
def client():
    """The app in process on every committed checkpoint, the MLP as default, lifespan run."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(default_model="names-mlp", device="cpu"))) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    """The container's exact command (Dockerfile CMD), run with this interpreter."""
    return [sys.executable, "-m", "app"]


class RunningServer:
    """`python -m app` on a free 127.0.0.1 port with extra NAMEGEN_* variables (an empty value unsets
    one: NAMEGEN_DEFAULT_MODEL="" serves the default the service chooses); its output in a file."""

    def __init__(self, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {**os.environ, "NAMEGEN_HOST": "127.0.0.1", "NAMEGEN_PORT": str(self.port),
                    "NAMEGEN_DEVICE": "cpu", "NAMEGEN_DEFAULT_MODEL": "names-mlp", **env}  # fmt: skip
        full_env = {name: value for name, value in full_env.items() if value != ""}
        with open(log, "w") as out:  # a file, not a pipe: a full pipe would stall the server
            self.proc = subprocess.Popen(
                serve_command(), cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_healthy(self, timeout: float = 60) -> RunningServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited: {self.log.read_text()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server did not become healthy within {timeout} s")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def mentions(self, text: str, timeout: float = 5.0) -> bool:
        """Whether the server's output says `text` within `timeout` seconds (logs arrive late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    """A real uvicorn process serving the committed checkpoint on a free 127.0.0.1 port."""
    server = RunningServer(tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield server.wait_healthy().url
    finally:
        server.stop()


def sample_names(model, n: int = 1, seed: int | None = None, **params) -> list[str]:
    """The names `model.sample` draws with SamplingParams(**params)."""
    from model.engine.params import SamplingParams

    return [s.name for s in model.sample(n, SamplingParams(**params), seed).names]


def sample_scored(model, n: int = 1, seed: int | None = None, **params) -> list[tuple[str, float]]:
    """(name, loss) pairs `model.sample` draws with SamplingParams(**params)."""
    from model.engine.params import SamplingParams

    return [(s.name, s.loss) for s in model.sample(n, SamplingParams(**params), seed).names]


@pytest.fixture(scope="session")
def forward_tiny_model(tiny_checkpoint: Path):
    """The tiny checkpoint forced onto the forward-pass path (no table)."""
    from model.engine.language_model import LanguageModel

    return LanguageModel.from_checkpoint(tiny_checkpoint, device="cpu", max_table_entries=0)


@pytest.fixture(scope="module")
def one_thread():
    """One BLAS and one torch thread while a module's tests run, as the service runs them."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)
