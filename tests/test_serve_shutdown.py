"""SIGTERM on a real ``yoloxdet serve`` process (official YOLOX-Nano at 320 px) while clients keep opening
fresh connections: every connection the server accepted gets an HTTP answer (200, or 503 "shutting down"
during the drain), later ones are refused, and the process exits 0.

Before the drain (serve/shutdown.py), uvicorn closed every connection without a request in progress at once:
the idle connections opened here before the signal, which send their request half a second after it, got no
answer. The drain is 2 s here, so that margin holds on a busy machine; no timing is asserted.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import pytest
from _serve_process import ServerProcess

IMAGE = "000000000009.jpg"


def _request(port: int, method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Content-Type: image/jpeg\r\n" if body else "") + "\r\n").encode() + body


def _answer(sock: socket.socket) -> str:
    """The status line and headers of the answer on ``sock``, or what happened instead."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed without an answer"
            data += chunk
    except OSError as exc:
        return f"no answer: {type(exc).__name__}"
    return data.split(b"\r\n\r\n")[0].decode().lower()


def _status(answer: str) -> str:
    return answer.split()[1] if answer.startswith("http/1.1") else answer


def test_sigterm_answers_every_accepted_connection_and_exits_0(nano_onnx, coco128, tmp_path):
    server = ServerProcess(
        str(nano_onnx),
        "--model",
        "yolox-nano",
        "--size",
        "320",
        "--drain-s",
        "2",
        log=tmp_path / "server.log",
    )
    image = (coco128 / "images" / IMAGE).read_bytes()
    detect = _request(server.port, "POST", "/v1/detect", image)
    outcomes: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:  # one fresh connection per request, as fast as it is answered
        while not stop.is_set():
            with socket.socket() as sock:
                sock.settimeout(120)
                try:
                    sock.connect(("127.0.0.1", server.port))
                except OSError:
                    outcome = "refused"
                else:
                    sock.sendall(detect)
                    outcome = _status(_answer(sock))
            with lock:
                outcomes[outcome] += 1
            if outcome == "refused":
                stop.wait(0.02)

    try:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=120) for _ in range(6)]
        clients = [threading.Thread(target=client) for _ in range(12)]
        for thread in clients:
            thread.start()
        stop.wait(1.0)
        server.process.send_signal(15)
        stop.wait(0.5)  # uvicorn alone would have closed the idle connections by now
        for index, sock in enumerate(idle):
            sock.sendall(_request(server.port, "GET", "/readyz") if index % 2 else detect)
        late = [_answer(sock) for sock in idle]
        code = server.process.wait(120)
    finally:
        stop.set()
        server.stop()
    for thread in clients:
        thread.join()
    assert code == 0, server.log.read_text()
    for answer in late:
        assert _status(answer) == "503", answer
        assert "connection: close" in answer, answer
    assert set(outcomes) <= {"200", "503", "refused"}, outcomes
    assert outcomes["200"] > 0 and outcomes["refused"] > 0, outcomes
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
