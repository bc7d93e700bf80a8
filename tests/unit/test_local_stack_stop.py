"""`jobkit down`: what `jobkit up` started stops, children included, by process group."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from jobkit_cli import localstack
from jobkit_cli.stack import LocalState, local_state_path


def _group_with_children() -> subprocess.Popen[bytes]:
    # Like MiniStack: a leader in its own session, with workers it started (one per function)
    return subprocess.Popen(  # noqa: S603
        ["/bin/sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True
    )


def _members(pgid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_down_stops_every_process_of_the_groups_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBKIT_HOME", str(tmp_path))
    emulator, external = _group_with_children(), _group_with_children()
    bystander = subprocess.Popen(["sleep", "300"])  # noqa: S603 - not ours to stop
    try:
        deadline = time.monotonic() + 5
        while len(_members(emulator.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_members(emulator.pid)) == 3  # the leader and its two workers
        local_state_path().write_text(
            LocalState(
                endpoint_url="http://127.0.0.1:1",
                external_url="http://127.0.0.1:2",
                ministack_pid=emulator.pid,
                external_pid=external.pid,
            ).model_dump_json()
        )
        localstack.stop()
        for process in (emulator, external):
            process.wait(timeout=15)
            assert _members(process.pid) == []
        assert bystander.poll() is None
        assert not local_state_path().exists()
    finally:
        bystander.kill()
        bystander.wait()
        for process in (emulator, external):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
