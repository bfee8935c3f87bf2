"""The local emulators' ports (dev/emulators.py): four distinct free ports every time — one port chosen twice made
Cosmos find Azurite already listening on it and a whole suite fail at set-up."""
from __future__ import annotations

import socket

from dev.emulators import Ports


def test_free_ports_are_distinct_and_free():
    for _ in range(300):
        ports = Ports.free()
        chosen = [ports.blob, ports.queue, ports.table, ports.cosmos]
        assert len(set(chosen)) == 4, ports
    for port in chosen:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nothing holds them once chosen
