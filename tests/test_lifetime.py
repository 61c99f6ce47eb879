"""How mutatui processes end, tried for real: the explorer in a pseudo-terminal that is closed
as an SSH drop closes it, started as `make run` starts it; SIGTERM on the explorer."""

import os
import pty
import select
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
from processes import default_stop_signals

from mutatui.store.synthetic import SyntheticSpec, build_synthetic

ROOT = Path(__file__).resolve().parents[1]
PAINTED_BYTES = 2000
"""The explorer has drawn its first screen once this much has come out of the terminal."""


@pytest.fixture
def small_db(tmp_path) -> Path:
    db = tmp_path / "small.db"
    build_synthetic(db, SyntheticSpec(layers=2, hidden=32, intermediate=64, kv=16, site=8, seed=3))
    return db


def start_in_terminal(command: list[str], hangup_ignored: bool = False) -> tuple[int, int]:
    """Run `command` as the session leader of a new pseudo-terminal, as a terminal emulator
    or sshd does (with SIGHUP ignored, as `nohup` leaves it, if asked); wait until the explorer
    has painted. Returns (pid, the terminal's master)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: a login shell's place
        default_stop_signals()
        if hangup_ignored:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.environ.update(TERM="xterm-256color", COLUMNS="100", LINES="30")
        os.execvp(command[0], command)
    painted = 0
    deadline = time.monotonic() + 120
    while painted < PAINTED_BYTES:
        assert time.monotonic() < deadline, "the explorer never painted"
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            painted += len(os.read(master, 65536))
    return pid, master


def session_members(session: int) -> list[int]:
    """The processes of a session: everything started on that terminal."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            members.append(int(entry.name))
    return members


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
def test_a_closed_terminal_ends_the_explorer_started_by_make_run(small_db):
    """Under make, the terminal's hangup reaches make alone; the explorer notices the loss
    itself (process.py) and leaves no process behind."""
    venv = Path(sys.prefix)
    command = [
        "make",
        "-s",
        "-C",
        str(ROOT),
        "run",
        f"VENV={venv}",
        f"DB={small_db}",
        "-o",
        str(venv / ".mutatui-installed"),  # set up already: make test's own venv
    ]
    pid, master = start_in_terminal(command)
    assert any(
        "browse" in Path(f"/proc/{member}/cmdline").read_text()
        for member in session_members(pid)
        if Path(f"/proc/{member}/cmdline").exists()
    )
    os.close(master)  # the SSH connection drops
    deadline = time.monotonic() + 20
    while session_members(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
        os.waitpid(pid, os.WNOHANG)
    assert session_members(pid) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
def test_a_closed_terminal_ends_the_explorer_even_under_nohup(small_db):
    """Detached work outlives its terminal when SIGHUP is ignored; an app cannot use it, and
    ends (it used to live on, reading a dead terminal at 100% of a core)."""
    command = [sys.executable, "-m", "mutatui", "browse", str(small_db)]
    pid, master = start_in_terminal(command, hangup_ignored=True)
    os.close(master)
    deadline = time.monotonic() + 20
    while session_members(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
        os.waitpid(pid, os.WNOHANG)
    assert session_members(pid) == []


def test_sigterm_ends_the_explorer_with_its_status(small_db):
    pid, master = start_in_terminal([sys.executable, "-m", "mutatui", "browse", str(small_db)])
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the explorer ignored SIGTERM"
            with_output = select.select([master], [], [], 0.2)[0]
            if with_output:
                with suppress(OSError):
                    os.read(master, 65536)
    finally:
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM


def read_until(master: int, marker: bytes, seconds: float = 120) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while marker not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        if select.select([master], [], [], 0.5)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the terminal's other end is gone: all was read
                break
    return seen


def test_a_detached_screen_outlives_its_terminal(tiny_model_dir, tmp_path):
    """`screen --detach` asks to survive the terminal: closed under it, the screen finishes."""
    db = tmp_path / "detached.db"
    command = [
        sys.executable, "-m", "mutatui", "screen", "--db", str(db), "--model",
        str(tiny_model_dir), "--layers", "0", "--matrices", "q", "--sites", "tiles:8",
        "--max-new-tokens", "4", "--choice", "none", "--detach",
    ]  # fmt: skip
    pid, master = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    said = read_until(master, b"--resume continues it").decode()
    os.close(master)  # the SSH connection drops right after
    os.waitpid(pid, 0)
    child = int(said.split("as pid ")[1].split(";")[0])
    deadline = time.monotonic() + 300
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        with suppress(ChildProcessError):
            os.waitpid(child, os.WNOHANG)
        time.sleep(0.2)
    log = db.with_name("detached.db.log").read_text()
    assert "complete" in log.splitlines()[-1], log
