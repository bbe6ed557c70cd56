"""CPU time and resident memory of processes, read from /proc (Linux), and the least CPU
time of repeated calls in this process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(stat_file: Path) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of one /proc/PID/stat; None when it is gone."""
    try:
        fields = stat_file.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, ppid 4, utime 14 and stime 15 (1-based).
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (a gone process counts 0)."""
    stats = (_stat(Path(f"/proc/{pid}/stat")) for pid in pids)
    return sum(stat[1] for stat in stats if stat is not None)


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """CPU seconds so far of ``root`` and every live process below it, by pid, from one
    read of /proc."""
    parent_and_cpu = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        stat = _stat(stat_file)
        if stat is not None:
            parent_and_cpu[int(stat_file.parent.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _cpu) in parent_and_cpu.items():
        children.setdefault(parent, []).append(pid)
    tree = {root} if root in parent_and_cpu else set()
    frontier = list(tree)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return {pid: parent_and_cpu[pid][1] for pid in tree}


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes, 0 when it is gone."""
    try:
        resident = Path(f"/proc/{pid}/statm").read_text().split()[1]
    except OSError:
        return 0
    return int(resident) * _PAGE


def best_cpu_seconds(call: Callable[[], object], repeats: int) -> float:
    """The least process CPU time (``time.process_time``) of ``repeats`` calls: the run
    least disturbed by whatever else shares the machine."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        call()
        best = min(best, time.process_time() - started)
    return best
