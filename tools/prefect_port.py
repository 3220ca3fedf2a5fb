"""The port of this project's local Prefect server, for the Makefile (standard library only).

``make prefect-server`` writes ``$PREFECT_HOME/server.json`` (pid, port, project) when it starts
a server. A server is this project's only when that marker names this project, its pid is
alive and it is a Prefect server: then its port is printed and ``make`` reuses it. Otherwise a
server answering on the default port (4200) is another project's (or a stale one), never
reused: the first free port from the default on is printed, and ``make prefect-server`` starts
this project's own server there and says so.

Usage: ``python3 tools/prefect_port.py PREFECT_HOME PROJECT_DIR [DEFAULT_PORT]``
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

MARKER = "server.json"


def ours(prefect_home: Path, project: Path) -> int | None:
    """The port of the live Prefect server this project started, or None."""
    try:
        marker = json.loads((prefect_home / MARKER).read_text())
        pid, port = int(marker["pid"]), int(marker["port"])
        if Path(marker["project"]).resolve() != project.resolve():
            return None
        os.kill(pid, 0)  # alive (raises when not)
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"prefect" not in cmdline.read_bytes():
            return None  # the pid was reused by another program
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port


def free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def port_for(prefect_home: Path, project: Path, default: int = 4200) -> int:
    """This project's server's port, else the first free port from ``default`` on."""
    found = ours(prefect_home, project)
    if found is not None:
        return found
    for port in range(default, default + 100):
        if free(port):
            return port
    with socket.socket() as sock:  # a hundred busy ports: any free one
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    home, project = Path(sys.argv[1]), Path(sys.argv[2])
    print(port_for(home, project, int(sys.argv[3]) if len(sys.argv) > 3 else 4200))
