"""Checks made before any work starts: where the run's files go, and how many threads it uses."""

from __future__ import annotations

import os

from .readers import DataError


def check_output_path(path: str, flag: str) -> None:
    """Refuse, with one line, an output path whose folder is missing or not writable, or that is a folder.

    Args:
        path: where a file will be written ('' for none: nothing to check).
        flag: the option that named it, for the message.

    Raises:
        DataError: the file could not be written there.
    """
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DataError(f"{flag} {path}: is a folder; give a file name, e.g. {os.path.join(path, 'out')}")
    if not os.path.isdir(folder):
        raise DataError(f"{flag} {path}: the folder {folder} does not exist; create it (mkdir -p {folder}) "
                        f"or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{flag} {path}: the folder {folder} is not writable; choose another path")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise DataError(f"{flag} {path}: the file exists and is not writable; choose another path")


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, within the cgroup's CPU quota where one is set
    (a container's share, which torch's own default of the host's cores ignores)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def choose_threads(requested: int) -> tuple[int, str]:
    """How many threads torch should use, and why: ``requested`` when > 0, else ``OMP_NUM_THREADS``
    when it is set, else the CPUs this process may use (``usable_cpus``). The same count on
    the same machine gives the same bits; another count may sum in another order."""
    if requested > 0:
        return requested, "--threads"
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    return usable_cpus(), "the CPUs this process may use"


def busy_note(threads: int) -> str | None:
    """A line of advice when other work keeps the CPUs busy: torch's threads wait for each other at
    every operation, so a thread on a busy core stalls the rest, and fewer threads run faster."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cpus = usable_cpus()
    free = int(cpus - load + 0.5)
    if threads <= 1 or load < 0.75 or free >= threads:
        return None
    return (f"note: other work keeps about {load:.1f} of {cpus} CPUs busy; with {threads} threads each waits on "
            f"the slowest, so --threads {max(1, free)} may run several times faster")
