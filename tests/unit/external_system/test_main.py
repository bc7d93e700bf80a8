"""`python -m external_system`: the process the local stack and the demo start."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

LOCAL = Path(__file__).resolve().parents[3] / "local"


@pytest.fixture
def process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The entry point started on port 0, once it has written its port file."""
    port_file = tmp_path / "port"
    paths = [str(LOCAL), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    command = [sys.executable, "-m", "external_system", "--host", "127.0.0.1", "--port", "0"]
    child = subprocess.Popen(
        [*command, "--port-file", str(port_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10.0
        while not port_file.exists():
            assert child.poll() is None, f"exited early: {child.communicate()[1]}"
            assert time.monotonic() < deadline, "no port file after 10 s"
            time.sleep(0.02)
        yield child, int(port_file.read_text())
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_the_entry_point_serves_on_the_port_it_wrote_and_stops_cleanly(
    process: tuple[subprocess.Popen[str], int], stop_signal: signal.Signals
) -> None:
    child, port = process
    # Given the process has written its port / When /health is called there
    response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5.0)
    # Then it answers; on the stop signal it exits 0, having printed only where it listened
    assert response.json() == {"status": "ok"}
    child.send_signal(stop_signal)
    stdout, stderr = child.communicate(timeout=10.0)
    assert child.returncode == 0, stderr
    assert stdout == f"external system listening on http://127.0.0.1:{port}\n"
