"""`python -m external_system --host H --port 0 [--port-file PATH]`: serve until signalled."""

import argparse
import os
import signal
import threading
from pathlib import Path

from external_system.server import start_server


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m external_system", description="Fake external system for jobkit"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the bound port")
    return parser.parse_args()


def _write_port(path: Path, port: int) -> None:
    # Written aside then renamed, so whoever polls for the file never reads it half-written.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(str(port))
    os.replace(partial, path)


def main() -> None:
    args = _arguments()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    server, thread = start_server(args.host, args.port)
    try:
        if args.port_file is not None:
            _write_port(args.port_file, server.port)
        print(f"external system listening on http://{args.host}:{server.port}", flush=True)
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


if __name__ == "__main__":
    main()
