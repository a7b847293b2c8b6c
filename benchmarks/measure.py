"""Run a command and measure wall time and the peak memory of its whole process tree.

Peers and our own tool both spread work over child processes, so the peak RSS that matters is
the sum over the tree, sampled from /proc (Linux) while the command runs.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Measured", "run_measured", "reset_peak_rss", "peak_rss_mib"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Measured:
    """Wall seconds, peak RSS of the process tree, stdout, and CPU seconds (user + system) of
    the tree: on a shared machine the CPU time is the steadier figure."""

    seconds: float
    peak_rss_bytes: int
    stdout: str
    cpu_seconds: float = 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _tree_rss(root: int) -> int:
    tree, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        with suppress(OSError, IndexError, ValueError):  # the process may have just ended
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        stack.extend(tree.get(pid, []))
    return total


def run_measured(command: Sequence[str], *, env: dict[str, str] | None = None,
                 interval: float = 0.05) -> Measured:
    """Run ``command`` to completion; raise CalledProcessError (with its stderr) on failure."""
    started = time.perf_counter()
    cpu_before = _children_cpu()
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(interval)
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, list(command), out, err)
    return Measured(seconds, peak, out, _children_cpu() - cpu_before)


def reset_peak_rss() -> None:
    """Start a fresh peak-RSS count of this process (Linux: clear_refs 5 resets VmHWM), so each
    measured step reports its own peak rather than the largest so far."""
    with suppress(OSError):  # elsewhere the peak stays cumulative (ru_maxrss)
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    """This process's peak resident memory since the last ``reset_peak_rss``, in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
        return round(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024, 1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
