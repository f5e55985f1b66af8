"""`reelfarm serve --local` as a child process, for bench/load.py and the CLI tests.

Its output goes to a file, never to a pipe: a server that logs more than a pipe holds
would block on a pipe nobody drains, and reading a live server's pipe to the end never
returns. The address comes from the banner line, whatever is logged before it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REELFARM = str(Path(sys.executable).parent / "reelfarm")
_BANNER = re.compile(r"^reelfarm API on (127\.0\.0\.1:\d+)", re.MULTILINE)


def start_server(args: list[str], log: Path,
                 timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """Start `reelfarm serve --local --port 0 ARGS`; (process, HOST:PORT) once it serves
    (the banner and the auth line are out). Raises with the output if it does not."""
    with log.open("w") as out:
        proc = subprocess.Popen([REELFARM, "serve", "--local", "--port", "0", *args],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        m = _BANNER.search(text)
        if m and "\nauth: " in text[m.end():]:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{text}")
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"serve did not start within {timeout} s:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """SIGTERM (as an operator would), then the exit status; killed if it hangs."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise
