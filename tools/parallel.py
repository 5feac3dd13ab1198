#!/usr/bin/env python3
"""Run shell commands side by side, one per core, and print each one's output whole when it ends.

    tools/parallel.py [--jobs N] COMMAND...

A conformance run is one process on one core, so CI's backends run as parallel streams: the
commands start in the order given (put the longest first), at most N at a time (default: the
machine's cores).  Each command's output goes to its own log, printed in one piece when it
finishes, with its exit status and seconds, so that streams do not interleave.  Every command
runs even after one fails (CI shows every failure at once); the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from typing import IO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("commands", nargs="+")
    args = parser.parse_args(argv)
    pending = deque(enumerate(args.commands, 1))
    running: dict[subprocess.Popen[bytes], tuple[int, str, IO[bytes], float]] = {}
    failed: list[str] = []
    total = len(args.commands)
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            i, cmd = pending.popleft()
            log = tempfile.TemporaryFile()
            running[subprocess.Popen(cmd, shell=True, stdout=log, stderr=subprocess.STDOUT)] = (i, cmd, log, time.monotonic())
        done = next((p for p in running if p.poll() is not None), None)
        if done is None:
            time.sleep(0.2)
            continue
        i, cmd, log, start = running.pop(done)
        log.seek(0)
        sys.stdout.write(f"==== [{i}/{total}] {cmd}\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(log.read())
        log.close()
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        sys.stdout.write(f"==== [{i}/{total}] {status} in {time.monotonic() - start:.0f} s: {cmd}\n")
        sys.stdout.flush()
        if done.returncode != 0:
            failed.append(cmd)
    if failed:
        sys.stdout.write("failed:\n" + "".join(f"  {c}\n" for c in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
