"""A deadline for a wait that Python cannot interrupt.

TensorFlow's multi-worker start waits in native code for every worker, holding the
interpreter: one worker of two whose peer never started was still waiting 17 minutes on,
its coordination service's registration timeout long past, no Python thread able to run
and SIGTERM unheeded. So the deadline is kept by another process: `deadline` starts this
module watching the job's process; the block's end (however it ends) closes the
watcher's stdin and it exits; if the deadline comes first, it writes the failure sentence
and kills the job with SIGKILL, the one signal native code cannot hold up.

    python -m smvision.training.watchdog PID SECONDS FAILURE_FILE MESSAGE
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def deadline(seconds: float, failure_file: Path, message: str) -> Iterator[None]:
    """End this process, with `message` in `failure_file`, unless the block ends within
    `seconds`."""
    watcher = subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid()), str(seconds), str(failure_file)]
        + [message],
        stdin=subprocess.PIPE,
    )
    try:
        yield
    finally:
        if watcher.stdin is not None:
            watcher.stdin.close()
        watcher.wait()


def main(argv: Sequence[str]) -> int:
    pid, seconds, failure_file, message = int(argv[0]), float(argv[1]), Path(argv[2]), argv[3]
    ended, _, _ = select.select([sys.stdin], [], [], seconds)
    if ended:  # the watched block ended (its end closed our stdin), or its process did
        return 0
    failure_file.parent.mkdir(parents=True, exist_ok=True)
    failure_file.write_text(message + "\n")
    print(message, file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
