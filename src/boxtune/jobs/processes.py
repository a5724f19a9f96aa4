"""Background processes: start them detached, tell whether they still live, stop them.

A pid alone is not an identity (pids are reused), so each record also keeps the process's
start time from ``/proc/<pid>/stat``; a dead process, a zombie, or a pid now used by another
process all count as "not alive".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_identity(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux); None elsewhere or if gone."""
    fields = _proc_stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _reap_if_our_child(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int | None, identity: str | None = None) -> bool:
    if not pid:
        return False
    if Path("/proc/self/stat").exists():
        fields = _proc_stat_fields(pid)
        if fields is None:
            return False
        if fields[0] in ("Z", "X"):
            _reap_if_our_child(pid)  # a zombie child of this process: collect it
            return False
        return identity is None or process_identity(pid) == identity
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn_detached(
    argv: Sequence[str],
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in its own session (it outlives the caller, e.g. a notebook kernel).

    stdout and stderr are appended to ``log_path``; stdin is closed.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def python_command(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter (the venv boxtune runs in)."""
    return [sys.executable, "-m", module, *args]


def wait_until_dead(pid: int, identity: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, identity):
            return True
        time.sleep(0.05)
    return not is_alive(pid, identity)


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (spawn_detached makes every job a group leader),
    which reaches the trainer's own children (data loader workers) too."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def terminate(
    pid: int | None,
    identity: str | None,
    grace_s: float = 10.0,
    first_signal: int = signal.SIGTERM,
    leader_only: bool = False,
) -> bool:
    """``first_signal`` to the group (or its leader only), SIGKILL to the group after
    ``grace_s``. True when the leader is gone."""
    if not pid or not is_alive(pid, identity):
        return True
    if leader_only:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, first_signal)
    else:
        signal_group(pid, first_signal)
    if wait_until_dead(pid, identity, grace_s):
        return True
    signal_group(pid, signal.SIGKILL)
    return wait_until_dead(pid, identity, 5.0)


def describe_exit(code: int) -> str:
    """``exit code 1`` / ``killed by signal SIGKILL (9)`` for a Popen return code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    text = f"killed by signal {name} ({-code})"
    if -code == signal.SIGKILL:
        text += "; if you did not kill it, the system may have run out of memory"
    return text
