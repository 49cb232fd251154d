"""A smoke run of the benchmark with tiny durations, so it cannot rot."""

import json
from pathlib import Path

import pytest

from bench.http_load import wrk_path
from bench.report import TARGETS
from bench.run import main


@pytest.mark.skipif(wrk_path() is None, reason="wrk is not installed (apt-get install wrk)")
def test_benchmark_smoke_run_writes_both_reports(tmp_path: Path):
    args = ["--seconds", "1", "--pairs", "1", "--concurrency", "1", "--repeats", "1", "--sizes", "1", "100",
            "--train-steps", "40", "--train-rounds", "2", "--sample-budget", "0.02", "--naive-cap", "3",
            "--compute-runs", "1", "--compute-names", "1000",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    endpoints = results["http"]["endpoints"]
    requests = {"sample n=1", "sample n=100", "next-char", "loss 1 word", "loss 1,000 words"}
    assert set(endpoints) == {"bare"} | {f"{m} {r}" for m in ("mlp", "default") for r in requests}
    assert len(results["http"]["bare_runs"]["1"]) == len(endpoints) - 1  # one bare run per endpoint
    for cells in endpoints.values():
        assert cells["1"]["requests"] > 0 and cells["1"]["requests_per_second"] > 0
        assert cells["1"]["p50_ms"] <= cells["1"]["p99_ms"]
    for request in requests:  # the default against the MLP: each round's ratio of their ratios to bare
        mine, mlp = endpoints[f"default {request}"]["1"], endpoints[f"mlp {request}"]["1"]
        assert (
            mine["versus_mlp_rounds"]
            == [mine["ratio_to_bare"] / mlp["ratio_to_bare"]]
            == [mine["versus_mlp"]]
        )
    paired = results["http"]["served_over_in_process"]  # one round (--pairs 1), its ratio the target's
    (round_,) = paired["rounds"]
    ratio = round_["served_names_per_s"] / round_["in_process_names_per_s"]
    assert round_["ratio"] == ratio == paired["ratio"]
    assert min(round_["served_names_per_s"], round_["in_process_names_per_s"]) > 0
    target = "default /sample n=100 at c=16: served names/s >= 1.5x in-process n=100"
    assert results["targets"][target] == (paired["ratio"] >= 1.5)
    assert set(results["sampling"]) == {"names-mlp", results["default_model"]}
    for rows in results["sampling"].values():
        assert [row["n"] for row in rows] == [1, 100]
        for row in rows:
            assert min(row["sampler_names_per_s"], row["naive_names_per_s"], row["makemore_names_per_s"]) > 0
    for row in results["compute"]["models"].values():  # the forward-pass models
        assert len(row["round_shares"]) == 3 and row["share_of_limit"] == sorted(row["round_shares"])[1]
        assert 0 < row["computed_mflop_per_char"] <= row["mflop_per_char"]  # the GRUs' prefix table
    calls = results["compute"]["small_dense_calls"]  # the default GRU's dense layer, its weight out x in
    assert calls["weight_kib"] == calls["weight"][0] * calls["weight"][1] * 4 / 1024
    assert set(calls["us_per_call"]) == {"1", "16"} and min(calls["us_per_call"].values()) > 0
    assert 1 <= calls["calls_per_pass_of_16"] <= 64  # a step per character drawn past the table, at most
    assert results["training"]["project"]["steps_per_s"] > 0
    assert len(results["training"]["round_ratios"]) == 2
    assert len(results["http"]["memory"]["rss_mb_after_each_repeat"]) == 1
    assert set(results["targets"]) == {name for name, _ in TARGETS}
    report = (tmp_path / "RESULTS.md").read_text()
    assert "| default sample n=100 |" in report and "## Targets" in report
    assert "### The default against the MLP" in report and "### Served against in process" in report
    assert "The default's dense layer, the one GEMM of its step" in report


def test_export_measurement_runs(capsys, monkeypatch):
    """bench.export's lines (server RSS and /health while an export streams), on a small export."""
    import sys

    from bench import export

    monkeypatch.setattr(sys, "argv", ["bench.export", "--n", "3000"])
    export.main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("names-mlp n=3,000 text/csv: 3,001 lines")
    assert lines[1].startswith("names-mlp n=3,000 application/x-ndjson: 3,000 lines")
    assert all("server RSS" in line and "/health during it" in line for line in lines)


def test_versus_mlp_summary_gives_median_share_at_target_and_bench_sized_medians():
    from bench.versus_mlp import summary

    text = summary([0.7, 0.9, 0.8, 0.6, 0.75, 0.85, 0.95])
    assert text.startswith("median of 7 rounds: 0.80; rounds >= 0.8: 4 of 7;")
    assert text.endswith("as `make bench` reports: 0.80, 0.75")  # rounds 1-3 and 4-6; the 7th alone is no run


@pytest.mark.skipif(wrk_path() is None, reason="wrk is not installed (apt-get install wrk)")
def test_versus_mlp_smoke_run_prints_each_round_and_the_summary(capsys):
    from bench.versus_mlp import main as versus_mlp

    assert versus_mlp(["--rounds", "2", "--seconds", "0.3", "--request", "loss 1 word"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["round 1", "round 2", "median of 2 rounds"]
    ratios = [float(line.split()[2]) for line in lines[:2]]
    assert all(ratio > 0 for ratio in ratios)
    median = float(lines[2].split()[4].rstrip(";"))  # of the unrounded ratios: within rounding of ours
    assert abs(median - (ratios[0] + ratios[1]) / 2) <= 0.01
