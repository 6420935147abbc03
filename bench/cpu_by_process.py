"""CPU seconds used by each kind of process while a command runs (Linux /proc), to find where the per-message CPU of
a load test goes:

    .venv/bin/python bench/cpu_by_process.py -- .venv/bin/python manage.py loadtest --sessions 500 --think-time 3

Groups: the web server, Celery worker main processes and their pool processes, beat, honcho, PostgreSQL backends,
Redis, the command itself (with its children), everything else. Processes that start or end during the command
are counted from their start or up to their last sample (sampled every 0.5 s), so a short-lived process may be
under-counted. Pass ``--messages N`` to also print milliseconds of CPU per message.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _group(cmd: str, pid: int, root: int, ancestors: dict[int, int]) -> str:
    parent = pid
    while parent > 1:
        if parent == root:
            return "command (load generator)"
        parent = ancestors.get(parent, 0)
    if "postgres" in cmd:
        return "postgresql"
    if "redis-server" in cmd:
        return "redis"
    if "daphne" in cmd or "uvicorn" in cmd or "gunicorn" in cmd or "uvicorn" in _cmdline(ancestors.get(pid, 0)):
        return "web server"  # uvicorn --workers: spawned children ("python -c from multiprocessing.spawn …")
    if "celery" in cmd and " beat" in cmd:
        return "celery beat"
    if "celery" in cmd and " worker" in cmd:
        parent_cmd = _cmdline(ancestors.get(pid, 0))
        kind = "pool" if "celery" in parent_cmd and " worker" in parent_cmd else "main"
        queues = "ml" if "-Q ml" in cmd else "main"
        return f"celery worker {queues} ({kind})"
    if "honcho" in cmd:
        return "honcho"
    return "other"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _sample() -> tuple[dict[int, tuple[str, float]], dict[int, int]]:
    usage: dict[int, tuple[str, float]] = {}
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        # utime, stime, cutime, cstime are fields 14-17 of stat (1-based); after the ")" split they start at 11
        seconds = sum(int(x) for x in fields[11:13]) / TICK
        usage[pid] = (_cmdline(pid), seconds)
    return usage, parents


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=0, help="messages the command handles (for ms/message)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    first, _ = _sample()
    last: dict[int, tuple[str, float]] = dict(first)
    parents: dict[int, int] = {}
    started = time.monotonic()
    child = subprocess.Popen(command)
    done = threading.Event()

    def sampler() -> None:
        while not done.wait(0.5):
            now, now_parents = _sample()
            last.update(now)
            parents.update(now_parents)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    code = child.wait()
    done.set()
    thread.join()
    final, final_parents = _sample()
    last.update(final)
    parents.update(final_parents)
    elapsed = time.monotonic() - started
    totals: dict[str, float] = {}
    for pid, (cmd, seconds) in last.items():
        if pid == os.getpid():
            continue
        before = first.get(pid, (cmd, 0.0))[1] if first.get(pid, ("", 0.0))[0] == cmd else 0.0
        used = seconds - before
        if used <= 0:
            continue
        group = _group(cmd, pid, child.pid, parents)
        totals[group] = totals.get(group, 0.0) + used
    # the command's own CPU: its children were reaped, so count them from the rusage of our children
    import resource

    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    totals["command (load generator)"] = own.ru_utime + own.ru_stime
    total = sum(totals.values())
    print(f"\nCPU seconds by process group over {elapsed:.1f} s of wall time ({total / elapsed:.2f} cores busy):")
    for group, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        per = f"  {seconds * 1000 / args.messages:7.2f} ms/message" if args.messages else ""
        print(f"  {group:<30} {seconds:8.2f} s{per}")
    per = f"  {total * 1000 / args.messages:7.2f} ms/message" if args.messages else ""
    print(f"  {'total':<30} {total:8.2f} s{per}")
    return code


if __name__ == "__main__":
    sys.exit(main())
