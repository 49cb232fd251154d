"""The Makefile's set-up steps, where they can run without installing anything."""

import shutil
import socket
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_an_unreachable_torch_index_is_one_line_then_the_local_wheels(tmp_path):
    with socket.socket() as closed:  # nothing listens here: the index cannot be reached
        closed.bind(("127.0.0.1", 0))
        index = f"http://127.0.0.1:{closed.getsockname()[1]}/whl/cpu"
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-s", f"VENV={venv}", f"TORCH_INDEX={index}", "PIP=echo pip install", f"{venv}/.torch"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        f"{index} cannot be reached: torch==2.13.0 comes from this machine's wheels and indexes",
        "pip install torch==2.13.0",
    ], done.stdout + done.stderr
    assert "Retrying" not in done.stderr and (venv / ".torch").exists()
