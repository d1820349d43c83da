"""Reaping what the worker inherits as a child subreaper.

The worker is a child subreaper (`zygote`), so that a session host outlives its zygote as the
worker's child. The same rule hands the worker any process orphaned below it: a host's own child
(`uname`, `ffmpeg`) left behind when the host is killed. Nothing else would collect those, so they
would stay zombies: `reap_orphans` collects every zombie child that is in a session other than the
worker's without leading it, which is what a host's own child is (a host leads its session). The
worker's own subprocesses are left to whoever waits for them: they are in its session (ffmpeg) or
lead their own (the embedded Redis, the zygotes, the session hosts, which `driver` reaps itself).
"""

from __future__ import annotations

import contextlib
import os


def _children() -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as children:
                found.update(int(pid) for pid in children.read().split())
    return found


def reap_orphans() -> int:
    """Collect zombie children in another session than ours that they do not lead; how many."""
    ours = os.getsid(0)
    reaped = 0
    for pid in _children():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if state == "Z" and session not in (ours, pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped += 1
    return reaped
