"""A request sent to a real server exactly as written (no client library rewrites a header or the path)."""

from __future__ import annotations

import socket


def post_as_written(port: int, host: str, path: str, headers: list[tuple[str, str]],
                    timeout: float = 30) -> tuple[str, str]:
    """POST ``path`` with ``headers`` and no body to 127.0.0.1:``port``: the status line and the body answered."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    request = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n{head}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status, _, body = data.decode("latin-1").partition("\r\n\r\n")
    return status.split("\r\n")[0], body
