"""Dockerfile and compose file, checked with what runs without a Docker engine."""

import json
import os
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
    """Base image and torch index are build arguments whose defaults are the slim image and CPU index."""
    assert _instruction("FROM") == "${BASE_IMAGE}"
    assert DOCKERFILE.index("ARG BASE_IMAGE=python:3.11-slim\n") < DOCKERFILE.index("FROM ")
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu\n" in DOCKERFILE
    assert 'pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0' in DOCKERFILE
    assert _instruction("USER") != "root" and _instruction("USER") != "0"
    # The installed package cannot find the weights next to itself: the image must say where they are.
    known = {f"NAMEGEN_{name.upper()}" for name in Settings.model_fields}
    assert set(re.findall(r"\b(NAMEGEN_[A-Z_]+)=", DOCKERFILE)) <= known
    assert "NAMEGEN_WEIGHTS=/app/weights" in DOCKERFILE and "COPY weights ./weights" in DOCKERFILE
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
    (serve_recipe,) = re.findall(r"^serve:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert "$(BIN)/python -m app" in serve_recipe
    port = Settings.model_fields["port"].default
    assert SERVICE["ports"] == [f"{port}:{port}"]
    assert _instruction("EXPOSE") == str(port)
    assert SERVICE["environment"]["NAMEGEN_PORT"] == str(port)
    assert SERVICE["environment"]["NAMEGEN_HOST"] == "0.0.0.0"
    known = {f"NAMEGEN_{name.upper()}" for name in Settings.model_fields}
    settings = {k: v for k, v in SERVICE["environment"].items() if k.startswith("NAMEGEN_")}
    assert set(settings) <= known
    Settings(**{k.removeprefix("NAMEGEN_").lower(): v for k, v in settings.items()})
    assert SERVICE["restart"] in {"always", "unless-stopped", "on-failure"}
    assert SERVICE["healthcheck"]["test"][:2] == ["CMD", "python"]


def test_compose_healthcheck_command_works_against_the_real_server(server_url):
    """The healthcheck (the Dockerfile's too) follows NAMEGEN_PORT: passes there, fails on a dead port."""
    check = SERVICE["healthcheck"]["test"][2:]
    (dockerfile_check,) = re.findall(r"^\s+CMD (\[.+\])$", DOCKERFILE, flags=re.MULTILINE)
    assert json.loads(dockerfile_check) == ["python", *check]
    port = server_url.rsplit(":", 1)[1]
    env = {**os.environ, "NAMEGEN_PORT": port}
    assert subprocess.run([sys.executable, *check], env=env, timeout=10).returncode == 0
    failing = subprocess.run(
        [sys.executable, *check], env={**env, "NAMEGEN_PORT": "9"}, capture_output=True, timeout=10
    )
    assert failing.returncode != 0
    assert httpx.get(f"{server_url}/health").status_code == 200


def test_compose_runs_the_service_as_locked_down_as_the_pod():
    pod = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())["spec"]["template"][
        "spec"
    ]
    (container,) = pod["containers"]
    assert SERVICE["user"] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    assert SERVICE["user"].split(":")[0] == _instruction("USER")
    assert SERVICE["read_only"] is True and any(m.startswith("/tmp") for m in SERVICE["tmpfs"])
    assert SERVICE["cap_drop"] == container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "no-new-privileges:true" in SERVICE["security_opt"]
    assert SERVICE["mem_limit"] == container["resources"]["limits"]["memory"].replace("Mi", "m")
    settings = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "k8s" / "settings.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("NAMEGEN_MAX_QUEUE", "NAMEGEN_SHUTDOWN_TIMEOUT"):  # the same drain budget
        assert SERVICE["environment"][name] == settings[name]
    grace = int(SERVICE["stop_grace_period"].removesuffix("s"))
    assert grace > float(settings["NAMEGEN_SHUTDOWN_TIMEOUT"])
    assert SERVICE["build"]["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim}"  # the offline route


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_debians_docker_compose_reads_the_file():
    done = subprocess.run(["docker-compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
