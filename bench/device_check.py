"""The accelerator check (issue 19, section 5): a device's answers against the CPU's, and batch
invariance there. One prepared script, for a machine with CUDA (or MPS):

    python -m bench.device_check                 # --device auto: CUDA > MPS; exit 2 when neither
    python -m bench.device_check --device cpu    # the CPU against itself: checks the harness

For every committed model: the next-character distribution after a few prefixes and the
per-character probabilities of a few words must agree with the CPU's to `--tolerance` (1e-5);
seeded names are compared one by one (a probability a few ulps apart may move a draw that falls
on a boundary, so the share that match is reported, and must reach `--min-same`); and the
start-up self-test (`model.engine.invariance`) runs on the device: its verdict and row minimum.
Writes a JSON report to `--out` and prints one line per model; exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from bench.processes import ROOT
from model.device import resolve_device
from model.engine.language_model import LanguageModel
from model.engine.params import SamplingParams

PREFIXES = ["", "a", "em", "chri", "xzq", "mariabella"]
WORDS = ["emma", "noah", "xqzv", "christopher", "ana"]
SEEDED = [(200, 1, SamplingParams()), (200, 2, SamplingParams(temperature=0.7, prefix="ka"))]


def compare(cpu: LanguageModel, device: LanguageModel) -> dict:
    """The largest probability difference, and the share of seeded names that are the same."""
    differences = [
        float(np.abs(cpu.next_char(prefix).probs - device.next_char(prefix).probs).max())
        for prefix in PREFIXES
    ]
    for ours, theirs in zip(cpu.word_losses(WORDS), device.word_losses(WORDS), strict=True):
        differences.append(float(np.abs(np.array(ours.probs) - np.array(theirs.probs)).max()))
    same = total = 0
    for n, seed, params in SEEDED:
        ours, theirs = cpu.sample(n, params, seed).names, device.sample(n, params, seed).names
        same += sum(a.name == b.name for a, b in zip(ours, theirs, strict=True))
        total += n
    return {"max_prob_difference": max(differences), "same_names": same / total}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.device_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="the device to check against the CPU (auto: CUDA > MPS)")
    p.add_argument("--weights", type=Path, default=ROOT / "weights")
    p.add_argument("--tolerance", type=float, default=1e-5, help="largest allowed probability difference")
    p.add_argument(
        "--min-same", type=float, default=0.99, help="smallest allowed share of equal seeded names"
    )
    p.add_argument("--out", type=Path, default=Path("device_check.json"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if args.device == "auto" and device.type == "cpu":
        print("no CUDA or MPS device here: nothing to check (use --device cpu to check the harness)")
        return 2
    torch.set_num_threads(1)
    report: dict = {"device": str(device), "torch": torch.__version__, "models": {}}
    if device.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(device)
    failed = False
    with threadpool_limits(1):
        for path in sorted(args.weights.glob("*.safetensors")):
            cpu = LanguageModel.from_checkpoint(path, device="cpu")
            cpu.check_batching()
            there = LanguageModel.from_checkpoint(path, device=str(device))
            verdict = there.check_batching()
            figures = {**compare(cpu, there), "batching": verdict, "min_rows": there.min_rows}
            ok = figures["max_prob_difference"] <= args.tolerance and figures["same_names"] >= args.min_same
            figures["ok"] = ok
            failed |= not ok
            report["models"][path.stem] = figures
            status = "ok" if ok else "FAILED"
            print(
                f"{path.stem}: {status}: max |p diff| {figures['max_prob_difference']:.2e}, same seeded "
                f"names {figures['same_names']:.1%}, batching {verdict} (min rows {there.min_rows})",
                flush=True,
            )
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
