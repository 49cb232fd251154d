"""Every start-up problem the operator can cause is one line naming the setting or the file, and a
failing exit: checked end to end with `python -m app`, the container's command.

The cases run as parallel processes (each imports torch: seconds apiece on a busy machine).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import torch

from app.__main__ import misspelled_settings
from tests.conftest import ROOT, free_port, serve_command
from tests.model.test_checkpoint import _resaved, _rewrite_metadata


def _checkpoint_cases(tiny: Path, tmp: Path) -> list[tuple[str, dict[str, str], list[str]]]:
    """(case, environment, what the output says: the first in the one error line) for each broken
    checkpoint of issue 12."""
    from model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny)
    state = dict(ckpt.state_dict)
    state["hidden.weight"] = state["hidden.weight"].clone()
    state["hidden.weight"][0, 0] = float("nan")
    nan = _resaved(tiny, tmp / "nan.safetensors", state_dict=state)
    permuted = tmp / "permuted.safetensors"
    _rewrite_metadata(tiny, permuted, alphabet=ckpt.vocab.alphabet[0] + ckpt.vocab.alphabet[1:][::-1])
    hashes = {
        kind: _resaved(tiny, tmp / f"hashes-{kind}.safetensors", known_word_hashes=value)
        for kind, value in [
            ("empty", torch.zeros(0, dtype=torch.int64)),
            ("float32", torch.ones(5, dtype=torch.float32)),
            ("2-D", torch.ones(2, 3, dtype=torch.int64)),
        ]
    }
    block = _resaved(tiny, tmp / "block.safetensors", config={**ckpt.config, "block_size": 4})
    metrics = tmp / "metrics.safetensors"
    _rewrite_metadata(tiny, metrics, metrics=json.dumps({"val_loss": "low"}))
    locked = tmp / "locked.safetensors"
    locked.write_bytes(tiny.read_bytes())
    locked.chmod(0)
    directory = tmp / "with-dir" / "dir.safetensors"
    directory.mkdir(parents=True)
    (tmp / "empty").mkdir()
    cases = [
        ("NaN weights", nan, [str(nan), "NaN or infinite"]),
        ("permuted alphabet", permuted, [str(permuted), "digest does not match"]),
        *[(f"{k} word hashes", p, [str(p), "non-empty 1-D int64"]) for k, p in hashes.items()],
        ("changed block_size", block, [str(block), "inconsistent"]),
        ("bad metrics", metrics, [str(metrics)]),
        ("a directory named like a checkpoint", directory.parent, [str(directory), "not a file"]),
        ("a directory without checkpoints", tmp / "empty", [str(tmp / "empty"), "holds no .safetensors"]),
        ("a missing file", tmp / "missing.safetensors", ["missing.safetensors", "neither a file"]),
        ("not safetensors", ROOT / "README.md", ["README.md", "not a readable safetensors file"]),
    ]
    if not os.access(locked, os.R_OK):  # as root every file is readable
        cases.append(("permission denied", locked, [str(locked), "Permission denied"]))
    return [(case, {"NAMEGEN_WEIGHTS": str(path)}, said) for case, path, said in cases]


def _setting_cases(busy_port: int) -> list[tuple[str, dict[str, str], list[str]]]:
    """(case, environment, what the output says: the first in the one error line)"""
    return [
        ("port not a number", {"NAMEGEN_PORT": "eighty"}, ["NAMEGEN_PORT"]),
        ("port out of range", {"NAMEGEN_PORT": "70000"}, ["NAMEGEN_PORT"]),
        ("port in use", {"NAMEGEN_PORT": str(busy_port)}, ["NAMEGEN_PORT", str(busy_port), "in use"]),
        ("host unknown", {"NAMEGEN_HOST": "no-such-host.invalid"}, ["NAMEGEN_HOST", "no-such-host.invalid"]),
        ("host not ours", {"NAMEGEN_HOST": "192.0.2.1"}, ["NAMEGEN_HOST", "192.0.2.1"]),
        ("bad timeout", {"NAMEGEN_BODY_TIMEOUT": "-1"}, ["NAMEGEN_BODY_TIMEOUT"]),
        (
            "more connections than open files",  # ULIMIT_N: run under `ulimit -n` (soft and hard)
            {"NAMEGEN_MAX_CONNECTIONS": "512", "ULIMIT_N": "300"},
            ["NAMEGEN_MAX_CONNECTIONS 512", "may open 300"],
        ),
        ("unknown default model", {"NAMEGEN_DEFAULT_MODEL": "names-nope"}, ["NAMEGEN_DEFAULT_MODEL"]),
        # a value given as a flag is named by its flag (ARGS: the command line's flags)
        ("port flag out of range", {"ARGS": "--port 70000"}, ["--port (NAMEGEN_PORT)"]),
        ("port flag in use", {"ARGS": f"--port {busy_port}"}, ["--port (NAMEGEN_PORT) " + str(busy_port)]),
        ("weights flag", {"ARGS": "--weights /no/such/dir"}, ["--weights (NAMEGEN_WEIGHTS) /no/such/dir"]),
        ("default model flag", {"ARGS": "--default-model nope"}, ["--default-model (NAMEGEN_DEFAULT_MODEL)"]),
        (
            "a misspelled setting is named beside the bad one",
            {"NAMEGEN_WEIGTHS": "weights", "NAMEGEN_PORT": "eighty"},
            [
                "NAMEGEN_PORT",
                "NAMEGEN_WEIGTHS is not a setting and is ignored (did you mean NAMEGEN_WEIGHTS?)",
            ],
        ),
    ]


def test_every_bad_start_up_is_one_clear_line_and_a_failing_exit(tiny_checkpoint: Path, tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = _checkpoint_cases(tiny_checkpoint, tmp_path) + _setting_cases(busy.getsockname()[1])
        procs = []
        for _case, env, _ in cases:
            full_env = {**os.environ, "NAMEGEN_PORT": str(free_port()), "NAMEGEN_DEVICE": "cpu", **env}
            command = serve_command() + full_env.pop("ARGS", "").split()
            if "ULIMIT_N" in env:
                command = ["bash", "-c", f'ulimit -n {full_env.pop("ULIMIT_N")} && exec "$@"', "-", *command]
            proc = subprocess.Popen(
                command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            procs.append(proc)
        problems = []
        for (case, _, said), proc in zip(cases, procs, strict=True):
            try:
                out, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                problems.append(f"{case}: still running after 120 s")
                continue
            text = out.decode("utf-8", "replace")
            lines = [line for line in text.splitlines() if "cannot start" in line or "Error" in line]
            if proc.returncode == 0:
                problems.append(f"{case}: exit 0\n{text}")
            elif "Traceback" in text or len(lines) != 1 or said[0] not in lines[0]:
                problems.append(f"{case}: expected one line saying {said[0]}, got:\n{text}")
            elif not all(s in text for s in said):
                problems.append(f"{case}: expected one line saying {said}, got:\n{text}")
    assert not problems, "\n\n".join(problems)


def test_a_misspelled_setting_is_named_with_the_closest_one():
    env = {
        "NAMEGEN_WEIGTHS": "x",
        "NAMEGEN_SEND_TIMOUT": "1",
        "NAMEGEN_ZZZZ": "1",
        "NAMEGEN_PORT": "1",
        "PATH": "",
    }
    warnings = misspelled_settings(env)
    assert len(warnings) == 3
    assert (
        "NAMEGEN_SEND_TIMOUT is not a setting and is ignored (did you mean NAMEGEN_SEND_TIMEOUT?)"
        in warnings[0]
    )
    assert "did you mean NAMEGEN_WEIGHTS?" in warnings[1]
    assert "NAMEGEN_ZZZZ" in warnings[2] and "NAMEGEN_HOST" in warnings[2]  # nothing close: all listed
