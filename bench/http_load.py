"""Drive one endpoint with wrk (a C load generator, in its own process) and parse its report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


class LoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float | None  # None: no request completed within the cell
    p99_ms: float | None
    requests: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_script(body: dict | None) -> str:
    if body is None:
        return 'wrk.method = "GET"\n'
    payload = json.dumps(body).replace("\\", "\\\\").replace("'", "\\'")
    return (
        f'wrk.method = "POST"\nwrk.body = \'{payload}\'\nwrk.headers["Content-Type"] = "application/json"\n'
    )


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(url: str, body: dict | None, concurrency: int, seconds: float) -> LoadResult:
    """`concurrency` open connections for `seconds`; every response must be a 2xx."""
    wrk = wrk_path()
    if wrk is None:
        raise LoadError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua_script(body))
    try:
        cmd = [
            wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            script.name,
            url,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        Path(script.name).unlink()
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise LoadError(f"wrk failed on {url}: {out}{done.stderr}")
    if "Non-2xx" in out or "Socket errors" in out:
        raise LoadError(f"wrk saw errors on {url}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    percentiles = dict(re.findall(r"^\s*(\d+)%\s+([\d.]+(?:us|ms|s))\s*$", out, flags=re.MULTILINE))
    if requests and not {"50", "99"} <= set(percentiles):
        raise LoadError(f"wrk gave no latency percentiles on {url}:\n{out}")
    return LoadResult(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(percentiles["50"]) if requests else None,
        p99_ms=_ms(percentiles["99"]) if requests else None,
        requests=requests,
    )
