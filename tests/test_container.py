"""Dockerfile and compose file, checked with what runs without a Docker engine."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from app.settings import Settings
from tests.conftest import ROOT, serve_command

COMPOSE_SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICE = COMPOSE["services"]["namegen"]


def _instruction(name: str) -> str:
    (line,) = re.findall(rf"^{name} (.+)$", DOCKERFILE, flags=re.MULTILINE)
    return line


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_slim_cpu_non_root_with_healthcheck():
    assert _instruction("FROM") == "python:3.11-slim"
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in DOCKERFILE
    assert _instruction("USER") != "root" and _instruction("USER") != "0"
    assert "/health" in DOCKERFILE.split("HEALTHCHECK", 1)[1]
    assert "COPY weights" in DOCKERFILE


@pytest.mark.skipif(not COMPOSE_SCHEMA.is_file(), reason="compose schema absent")
def test_compose_file_follows_the_compose_specification():
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(COMPOSE)


def test_compose_dockerfile_makefile_and_app_agree():
    cmd = json.loads(_instruction("CMD"))
    assert SERVICE["command"] == cmd == ["python", *serve_command()[1:]]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(BIN)/python -m app" in makefile.split("serve:", 1)[1].split("\n\n")[0]
    port = Settings.model_fields["port"].default
    assert SERVICE["ports"] == [f"{port}:{port}"]
    assert _instruction("EXPOSE") == str(port)
    assert SERVICE["environment"]["NAMEGEN_PORT"] == str(port)
    assert SERVICE["environment"]["NAMEGEN_HOST"] == "0.0.0.0"
    known = {f"NAMEGEN_{name.upper()}" for name in Settings.model_fields}
    assert set(SERVICE["environment"]) <= known
    Settings(**{k.removeprefix("NAMEGEN_").lower(): v for k, v in SERVICE["environment"].items()})
    assert SERVICE["restart"] in {"always", "unless-stopped", "on-failure"}
    assert SERVICE["healthcheck"]["test"][:2] == ["CMD", "python"]


def test_compose_healthcheck_command_works_against_the_real_server(server_url):
    """The exact healthcheck, pointed at the test server's port, passes; and fails on a dead port."""
    check = SERVICE["healthcheck"]["test"][2:]
    assert f"127.0.0.1:{Settings.model_fields['port'].default}/health" in check[-1]
    script = check[-1].replace("http://127.0.0.1:8000", server_url)
    assert subprocess.run([sys.executable, *check[:-1], script], timeout=10).returncode == 0
    dead = script.replace(server_url, "http://127.0.0.1:9")
    failing = subprocess.run([sys.executable, *check[:-1], dead], capture_output=True, timeout=10)
    assert failing.returncode != 0
    assert httpx.get(f"{server_url}/health").status_code == 200
