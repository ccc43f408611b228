"""Serve an index with the fake query encoders, in its own process (for the load test).

Usage: python fake_server.py INDEX_DIR FD — FD is a listening socket inherited from the
parent (bound to 127.0.0.1:0 there, so there is no port race).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.*

import torch
import uvicorn

from nmodal.serve import create_app, server_config
from tests.index.fixtures import fake_encoder_source


def main() -> None:
    index_dir, fd = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    sock = socket.socket(fileno=fd)
    app = create_app(index_dir, encoder_source=fake_encoder_source)
    uvicorn.Server(server_config(app, "warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
