"""How many CPUs this process may really use: its CPU affinity, capped by its cgroup's CPU quota.

`os.cpu_count()` is the node's core count: a pod limited to 1 CPU on a 64-core node would start 64
worker threads that the kernel then throttles to one CPU's worth of time. The quota lives in the
cgroup: `cpu.max` ("<quota> <period>" or "max <period>") on cgroup v2, `cpu.cfs_quota_us` and
`cpu.cfs_period_us` (-1 = none) on v1. A fractional quota rounds up (1.5 CPUs -> 2 threads, 0.5
-> 1): the threads then share the quota rather than leave part of it unused.

Every cgroup from this process's own up to the mount's root is read and the lowest quota wins (a
parent's limit binds its children). Inside a container the mount usually shows only the
container's own cgroup, at the root, so the root itself is always read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 mounts the cpu controller under one of these names (alone or co-mounted with cpuacct).
V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def affinity_cpus() -> int:
    """The CPUs the scheduler lets this process run on (all of the machine's where it cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """This process's cgroup path on v2 ("0::/path") and on v1's cpu controller ("N:cpu,...:/path")."""
    v2 = v1 = None
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _own_and_ancestors(mount: Path, path: str | None) -> Iterator[Path]:
    """`mount/path` and each parent up to `mount` itself; just `mount` when that path is not visible."""
    here = mount / path.strip("/") if path else mount
    if not here.is_dir():  # a container's cgroup namespace shows its own cgroup as the root
        here = mount
    while True:
        yield here
        if here == mount or mount not in here.parents:
            return
        here = here.parent


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _cpus(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def _v2_limit(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        return _cpus(int(quota), int(period or 100_000))
    except ValueError:
        return None


def _v1_limit(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        return _cpus(int(quota or -1), int(period or 100_000))
    except ValueError:
        return None


def cgroup_cpu_limit(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPU quota (in CPUs, maybe fractional) of this process's cgroups, or None when unlimited."""
    v2_path, v1_path = _cgroup_paths(proc_cgroup)
    limits = [_v2_limit(d) for d in _own_and_ancestors(cgroup_root, v2_path)]
    for name in V1_CPU_DIRS:
        mount = cgroup_root / name
        if mount.is_dir():
            limits += [_v1_limit(d) for d in _own_and_ancestors(mount, v1_path)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def available_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The CPU affinity's size, capped by the cgroup CPU quota rounded up; at least 1."""
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)
