"""Real HTTP servers on loopback for the outbound URL guard tests: routes answer with a body, a
redirect, a slow drip or a huge stream; every request is counted per path."""

import http.server
import threading
import time
from collections import Counter
from contextlib import contextmanager


def wait_until(fn, timeout=60, what="condition"):
    """``fn()`` once it is truthy, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := fn():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Routes:
    def __init__(self):
        self.routes = {}  # path -> callable(handler)
        self.hits = Counter()
        self.bodies = {}
        self.cut = {}  # path -> bytes a drip had sent when its client hung up early
        self.headers = {}  # path -> the last request's headers

    def body(self, path, text, status=200, content_type="text/plain"):
        def answer(h):
            data = text.encode() if isinstance(text, str) else text
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        self.routes[path] = answer

    def redirect(self, path, location, status=302):
        def answer(h):
            h.send_response(status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        self.routes[path] = answer

    def drip(self, path, seconds, every=0.2):
        """Headers at once, then one byte every ``every`` seconds for ``seconds``. When the client
        hangs up before the end, ``cut[path]`` is the number of bytes it had been sent."""

        def answer(h):
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.end_headers()
            end = time.monotonic() + seconds
            sent = 0
            try:
                while time.monotonic() < end:
                    h.wfile.write(b"#")
                    h.wfile.flush()
                    sent += 1
                    time.sleep(every)
            except OSError:
                self.cut[path] = sent

        self.routes[path] = answer

    def huge(self, path, total, declare=False):
        """``total`` bytes of YAML comment, streamed (no Content-Length unless ``declare``)."""

        def answer(h):
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            if declare:
                h.send_header("Content-Length", str(total))
            h.end_headers()
            chunk = b"# " + b"x" * 65533 + b"\n"
            sent = 0
            try:
                while sent < total:
                    h.wfile.write(chunk)
                    sent += len(chunk)
                    self.bodies[path] = sent
            except OSError:
                pass

        self.routes[path] = answer


@contextmanager
def serve(host="127.0.0.1", tls=None):
    """Yields (base URL, Routes); ``tls``: an ``ssl.SSLContext`` to serve https with."""
    routes = Routes()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def _any(self):
            path = self.path.split("?")[0]
            routes.hits[path] += 1
            routes.headers[path] = dict(self.headers)
            length = int(self.headers.get("Content-Length") or 0)
            routes.bodies[f"{self.command} {path}"] = self.rfile.read(length) if length else b""
            answer = routes.routes.get(path)
            if answer is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer(self)

        do_GET = do_POST = _any

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield f"{scheme}://{host}:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
