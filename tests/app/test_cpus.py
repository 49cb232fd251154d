"""Worker threads follow the container's CPU quota (cgroup v1 and v2) and affinity, not the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.serving import cpus
from app.serving.cpus import available_cpus, cgroup_cpu_limit
from app.settings import Settings


@pytest.fixture
def node_with_64_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _v2(tmp_path: Path, cpu_max: dict[str, str], own: str = "/") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    root.mkdir()
    for relative, text in cpu_max.items():
        _write(root / relative / "cpu.max", text)
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, f"0::{own}")
    return root, proc


def _v1(tmp_path: Path, mount: str, quotas: dict[str, tuple[int, int]], own: str = "/") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for relative, (quota, period) in quotas.items():
        _write(root / mount / relative / "cpu.cfs_quota_us", str(quota))
        _write(root / mount / relative / "cpu.cfs_period_us", str(period))
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, f"5:memory:{own}\n4:{mount}:{own}\n0::/")
    return root, proc


@pytest.mark.usefixtures("node_with_64_cores")
@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("100000 100000", 1),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("400000 100000", 4),
        ("max 100000", 64),
    ],
)
def test_v2_quota_in_a_container_caps_the_threads(tmp_path, cpu_max, expected):
    """A 1-CPU pod on a 64-core node gets 1 thread; fractions round up; `max` is no limit."""
    root, proc = _v2(tmp_path, {"": cpu_max})
    assert available_cpus(root, proc) == expected


@pytest.mark.usefixtures("node_with_64_cores")
def test_v2_lowest_quota_on_the_path_to_the_root_wins(tmp_path):
    root, proc = _v2(
        tmp_path,
        {"": "max 100000", "kubepods/pod1": "300000 100000", "kubepods/pod1/c1": "max 100000"},
        own="/kubepods/pod1/c1",
    )
    assert cgroup_cpu_limit(root, proc) == 3.0
    assert available_cpus(root, proc) == 3


@pytest.mark.usefixtures("node_with_64_cores")
@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_v1_cfs_quota_caps_the_threads(tmp_path, mount):
    root, proc = _v1(tmp_path, mount, {"": (-1, 100000), "docker/abc": (200000, 100000)}, own="/docker/abc")
    assert available_cpus(root, proc) == 2


@pytest.mark.usefixtures("node_with_64_cores")
def test_v1_container_sees_its_own_cgroup_at_the_mount_root(tmp_path):
    """Docker on v1 mounts the container's cgroup at the root while /proc/self/cgroup names its host path."""
    root, proc = _v1(tmp_path, "cpu,cpuacct", {"": (100000, 100000)}, own="/docker/0123abcd")
    assert available_cpus(root, proc) == 1


@pytest.mark.usefixtures("node_with_64_cores")
def test_no_cgroup_files_means_the_affinity(tmp_path):
    assert cgroup_cpu_limit(tmp_path, tmp_path / "absent") is None
    assert available_cpus(tmp_path, tmp_path / "absent") == 64
    root, proc = _v1(tmp_path, "cpu", {"": (-1, 100000)})
    assert available_cpus(root, proc) == 64


def test_affinity_caps_a_larger_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    root, proc = _v2(tmp_path, {"": "800000 100000"})
    assert available_cpus(root, proc) == 2


def test_garbage_in_cgroup_files_is_ignored(tmp_path, node_with_64_cores):
    root, proc = _v2(tmp_path, {"": "lots 100000"})
    assert available_cpus(root, proc) == 64


def test_this_machine_gives_at_least_one_cpu_and_no_more_than_the_affinity():
    assert 1 <= available_cpus() <= cpus.affinity_cpus()


def test_namegen_workers_overrides_and_must_be_positive(monkeypatch):
    assert Settings().workers is None
    monkeypatch.setenv("NAMEGEN_WORKERS", "3")
    assert Settings().workers == 3
    monkeypatch.setenv("NAMEGEN_WORKERS", "0")
    with pytest.raises(ValueError, match="workers"):
        Settings()


def test_the_app_passes_namegen_workers_to_its_runner(monkeypatch):
    from fastapi.testclient import TestClient

    from app.main import create_app

    monkeypatch.setenv("NAMEGEN_WORKERS", "3")
    with TestClient(create_app(Settings())) as client:
        assert client.get("/health").status_code == 200
        assert client.app.state.service.runner.threads == 3
