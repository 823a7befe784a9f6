"""CPU time of a process tree read from ``/proc`` (Linux), for the benchmarks that measure a
server running in other processes."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` and its live children; with ``reaped``,
    also of the children it has already waited for (``cutime`` and ``cstime``: a PostgreSQL
    postmaster's ended backends)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(stat.parent.name) == pid:
            total += sum(int(f) for f in fields[11 : 15 if reaped else 13])
        elif int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks
