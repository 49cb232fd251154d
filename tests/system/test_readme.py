"""Run every curl example of the README against a real server, so the README cannot go stale."""

import json
import re
import shlex
import subprocess

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
CURL_LINES = re.findall(r"^curl .+$", README, flags=re.MULTILINE)


def test_readme_documents_every_endpoint_with_curl():
    assert len(CURL_LINES) >= 6
    for path in ("/sample", "/next-char", "/loss", "/classify", "/models", "/model", "/health"):
        assert any(f"8000{path}" in line for line in CURL_LINES), path


@pytest.mark.parametrize("line", CURL_LINES)
def test_readme_curl_example_works(server_url, line, tmp_path):
    args = shlex.split(line.replace("http://127.0.0.1:8000", server_url))
    done = subprocess.run(
        [*args, "--fail-with-body"], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    request = json.loads(args[args.index("-d") + 1]) if "-d" in args else {}
    if "Accept: text/csv" in line:  # an export, written to the file named by -o
        out = tmp_path / args[args.index("-o") + 1]
        rows = out.read_text().splitlines()
        assert rows[0] == "name,loss,percentile,novel,truncated" and len(rows) == request["n"] + 1
        return
    body = json.loads(done.stdout)
    if "/sample" in line:
        assert body["complete"] and len(body["names"]) == request["n"]
        assert all(n["name"].startswith(request.get("prefix", "")) for n in body["names"])
        constraints = request.get("constraints", {})
        assert ("constraint" in body) == bool(constraints)
        for n in body["names"]:
            name = n["name"]
            assert name.endswith(constraints.get("ends_with", ""))
            assert all(s in name for s in constraints.get("contains", []))
            assert not any(s in name for s in constraints.get("excludes", []))
            assert re.fullmatch(constraints.get("regex", ".*"), name)
            lo, hi = constraints.get("length", [1, 64])
            assert lo <= len(name) <= hi
    elif "/next-char" in line:
        assert len(body["distribution"]) == 27
    elif "/loss" in line:
        assert "loss" in body or "mean_loss" in body
    elif "/classify" in line:
        assert [r["word"] for r in body["results"]] == request["words"]
        assert all(sum(r["gender"].values()) == pytest.approx(1) for r in body["results"])
    elif "/models" in line:
        assert {m["name"] for m in body["models"]} >= {"names-mlp", "names-gru"}
        assert body["default"] in {m["name"] for m in body["models"]}
    elif "/model" in line:
        assert body["name"] == "names-mlp"  # the test server's NAMEGEN_DEFAULT_MODEL
    else:
        assert body == {"status": "ok"}
