"""Starts and stops the server under test (`protocol_fixture cluster`) for the Python
interop tests; no Socket.IO knowledge lives here.

Which program runs:

- ``INTEROP_SERVER_CMD`` (whitespace-separated command) if set, so the tests can be
  checked against another implementation of the contract;
- else ``PROTOCOL_FIXTURE_BIN``;
- else ``<repo>/target/debug/examples/protocol_fixture``.

The arguments ``cluster --port PORT --host 127.0.0.1`` are appended, and the server must
print ``listening on ADDR`` as its first stdout line (see the fixture README).

``start_switchboard`` runs the shipped binary instead, for behaviour that lives in it
(configuration, the Origin policy).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "examples" / "protocol_fixture"
HOST = "127.0.0.1"

#: Safety net only: a debug build starts in well under a second.
START_TIMEOUT_S = 30.0
#: How long a stopped server may take to exit before it is killed.
STOP_TIMEOUT_S = 10.0


def _command() -> list[str]:
    custom = os.environ.get("INTEROP_SERVER_CMD", "").strip()
    if custom:
        return shlex.split(custom)
    binary = os.environ.get("PROTOCOL_FIXTURE_BIN") or str(DEFAULT_BIN)
    if not os.path.exists(binary):
        raise RuntimeError(
            f"fixture binary not found at {binary}: run "
            "`cargo build -p switchboard-cluster --examples` "
            "or set PROTOCOL_FIXTURE_BIN / INTEROP_SERVER_CMD"
        )
    return [binary]


class Fixture:
    """A running server; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, proc: subprocess.Popen, addr: str, stderr_file):
        self.proc = proc
        self.addr = addr
        self.port = int(addr.rsplit(":", 1)[1])
        self.url = f"http://{HOST}:{self.port}"
        self._stderr_file = stderr_file

    def stderr(self) -> str:
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode("utf-8", "replace")[-16384:]

    def stop(self, sig: str = "SIGTERM") -> int:
        """Sends ``sig`` (SIGTERM or SIGKILL), waits for the exit, returns the exit code.

        Raises, with the server's stderr, if the server had already exited on its own
        (a crash the tests may only have seen as disconnects), or if it did not exit
        with code 0 on SIGTERM as the fixture contract requires.
        """
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"server exited on its own (code {self.proc.returncode}) before the test "
                f"stopped it\nstderr: {self.stderr()}"
            )
        if sig == "SIGKILL":
            self.proc.kill()
        else:
            self.proc.terminate()
        timed_out = False
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.proc.kill()
            code = self.proc.wait()
        stderr = self.stderr()
        self._stderr_file.close()
        if sig == "SIGTERM" and (timed_out or code != 0):
            problem = (
                f"did not exit within {STOP_TIMEOUT_S} s of SIGTERM"
                if timed_out
                else f"exited with {code} on SIGTERM (want 0)"
            )
            raise RuntimeError(f"server {problem}\nstderr: {stderr}")
        return code


def start_fixture(port: int = 0, retry_bind_s: float = 5.0) -> Fixture:
    """Spawns the server and returns once it printed ``listening on ADDR``.

    With a fixed ``port``, retries for a while if the port is still held.
    """
    deadline = time.monotonic() + retry_bind_s
    while True:
        try:
            return _spawn_once(port)
        except _ExitedEarly:
            if port == 0 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class _ExitedEarly(RuntimeError):
    pass


def start_switchboard(env: dict[str, str]) -> Fixture:
    """Spawns the shipped binary, ``switchboard serve`` (``SB_SERVER_BIN`` or
    ``<repo>/target/debug/switchboard``) on a free port with ``env`` added (its
    ``SWITCHBOARD_*`` settings), and returns once it is listening."""
    binary = os.environ.get("SB_SERVER_BIN") or str(REPO_ROOT / "target" / "debug" / "switchboard")
    if not os.path.exists(binary):
        raise RuntimeError(f"switchboard binary not found at {binary}: run `cargo build -p switchboard`")
    cmd = [binary, "serve", "--listen", f"{HOST}:0"]
    return _spawn(cmd, {"RUST_LOG": "warn", **os.environ, **env})


def _spawn_once(port: int) -> Fixture:
    cmd = _command() + ["cluster", "--port", str(port), "--host", HOST]
    return _spawn(cmd, {"RUST_LOG": "warn", **os.environ})


def _spawn(cmd: list[str], env: dict[str, str]) -> Fixture:
    stderr_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file, env=env
    )
    first_line: list[bytes] = []
    got_line = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        first_line.append(proc.stdout.readline())
        got_line.set()
        for _ in proc.stdout:  # drain so the server never blocks on a full pipe
            pass

    threading.Thread(target=read_stdout, daemon=True).start()

    def failure(message: str, exc=RuntimeError) -> Exception:
        proc.kill()
        proc.wait()
        stderr_file.seek(0)
        err = stderr_file.read().decode("utf-8", "replace")[-16384:]
        stderr_file.close()
        return exc(f"{message}\ncommand: {' '.join(cmd)}\nstderr: {err}")

    if not got_line.wait(START_TIMEOUT_S):
        raise failure(f'server did not print "listening on" within {START_TIMEOUT_S} s')
    line = first_line[0].decode("utf-8", "replace").strip()
    if not line:
        proc.wait(timeout=STOP_TIMEOUT_S)
        raise failure(f"server exited (code {proc.returncode}) before listening", _ExitedEarly)
    match = re.fullmatch(r"listening on (\S+)", line)
    if not match:
        raise failure(f"unexpected first stdout line: {line!r}")
    return Fixture(proc, match.group(1), stderr_file)
