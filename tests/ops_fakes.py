"""Local stand-ins on loopback for the services the ops parts talk to: webhooks and the Telegram bot API."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional


class Recorder:
    """An HTTP server recording every POST (path, headers, JSON body); answers from ``statuses`` in turn
    (then 200). ``hold``: when set, requests wait until ``release`` is set. Telegram: GET/POST
    /bot<token>/getUpdates serves ``updates`` (taken once)."""

    def __init__(self) -> None:
        self.posts: List[Dict[str, Any]] = []
        self.statuses: List[int] = []
        self.hold = False
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.updates: List[dict] = []
        self.update_polls = 0
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(None)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length) if length else b""
                self._serve(raw)

            def _serve(self, raw: Optional[bytes]) -> None:
                if self.path.split("?")[0].endswith("/getUpdates"):
                    with recorder.lock:
                        recorder.update_polls += 1
                        updates, recorder.updates = recorder.updates, []
                    if not updates:
                        recorder.release.wait(0.2)  # a short long-poll
                    self._reply(200, {"ok": True, "result": updates})
                    return
                body = json.loads(raw) if raw else None
                with recorder.lock:
                    status = recorder.statuses.pop(0) if recorder.statuses else 200
                    recorder.posts.append({"path": self.path, "headers": dict(self.headers), "json": body,
                                           "raw": raw, "status": status})
                recorder.arrived.set()
                if recorder.hold:
                    recorder.release.wait(30)
                self._reply(status, {"ok": status < 300, "result": {}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def ok_posts(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [p for p in self.posts if p["status"] < 300]

    def __enter__(self) -> "Recorder":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
