"""Golden hashes: one sha256 of seeded answers per model, to catch a replica that answers differently.

    python -m model.engine.golden            # this machine's digests, checked against weights/golden.json
    python -m model.engine.golden --record   # record them as this platform's (a trusted replica)

The bytes of an answer are a fact of the weights, the code and the platform: the CPU's instruction
set picks the BLAS kernels, and a library version may change them. Replicas behind one load balancer
must give the same bytes for the same seed, so the digests are kept per platform (`platform_key`):
a replica whose key is recorded must match; a new platform is recorded once, on purpose. A change
of code that changes a model's bits records that model again where it is made and drops its
digest from the other platforms (nobody there to record it): they are recorded again on such a
machine. The models are hashed as the service serves them: after the batch-invariance self-test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
GOLDEN = WEIGHTS / "golden.json"
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def cpu_description() -> str:
    """The CPU's model name and the instruction-set flags BLAS kernels are chosen by (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    first = info.split("\n\n", 1)[0]  # the first processor's block
    pairs = (line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    name, flags = fields.get("model name", ""), set(fields.get("flags", "").split())
    return f"{name or platform.machine()} [{' '.join(f for f in ISA_FLAGS if f in flags)}]"


def platform_key() -> str:
    """What decides the bits of an answer besides the weights: CPU, torch, NumPy and its BLAS."""
    blas = sorted(f"{lib['internal_api']} {lib['version']}" for lib in threadpool_info())
    return f"{cpu_description()} | torch {torch.__version__} | numpy {np.__version__} | {', '.join(blas)}"


def answers_digest(model: LanguageModel) -> str:
    """sha256 over seeded names with their losses, word scores and a next-character distribution
    (and, for a conditional model, conditioned names): every path whose bytes the contract fixes."""
    h = hashlib.sha256()
    for n, seed, params in [
        (1, 7, SamplingParams()),
        (300, 11, SamplingParams(prefix="ka", temperature=0.8)),
    ]:
        for s in model.sample(n, params, seed).names:
            h.update(s.name.encode() + np.float64(s.loss).tobytes())
    for score in model.word_losses(["emma", "xqzv", "christopher"]):
        h.update(np.array(score.nlls).tobytes())
    h.update(model.next_char("an").probs.tobytes())
    for key, values in model.conditions.items():
        for s in model.sample(20, SamplingParams(), 3, condition={key: values[0]}).names:
            h.update(s.name.encode() + np.float64(s.loss).tobytes())
    return h.hexdigest()


def served_digests(weights: Path = WEIGHTS) -> dict[str, str]:
    """Each committed checkpoint's digest, served as the service serves it (one thread, self-tested)."""
    torch.set_num_threads(1)
    digests = {}
    with threadpool_limits(1):
        for path in sorted(weights.glob("*.safetensors")):
            model = LanguageModel.from_checkpoint(path, device="cpu")
            model.check_batching()
            digests[path.stem] = answers_digest(model)
    return digests


def recorded(path: Path | None = None) -> dict[str, dict[str, str]]:
    """The recorded digests per platform key ({} when none are), from `GOLDEN` by default."""
    path = path or GOLDEN
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", action="store_true", help="record this platform's digests")
    args = p.parse_args(argv)
    key, digests = platform_key(), served_digests()
    golden = recorded()
    if args.record:
        golden[key] = digests
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(digests)} digests for {key}")
        return 0
    mine = golden.get(key, {})
    if not mine:
        print(f"no digests recorded for this platform ({key}); `--record` on a trusted replica")
        return 2
    verdicts = {name: _verdict(mine.get(name), digest) for name, digest in digests.items()}
    for name in sorted(digests):
        print(f"{name}: {verdicts[name]} {digests[name]}")
    if "DIFFERS" in verdicts.values():
        return 1
    return 2 if "not recorded" in verdicts.values() else 0


def _verdict(recorded_digest: str | None, digest: str) -> str:
    if recorded_digest is None:  # a change of code dropped it where it could not be recorded again
        return "not recorded"
    return "ok" if recorded_digest == digest else "DIFFERS"


if __name__ == "__main__":
    sys.exit(main())
