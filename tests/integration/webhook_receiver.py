#!/usr/bin/env python3
"""webhook_receiver.py - a tiny HTTP server standing in for a webhook
receiver in kiln's alert tests: every POST body is checked to be JSON and
appended as one line to OUT_FILE; GET /count answers how many were kept.
With --fail-first N the first N POSTs are answered 503, so the notifier's
retry with backoff is exercised.  Binds 127.0.0.1 only.

usage: webhook_receiver.py PORT OUT_FILE [--fail-first N]
"""
import http.server
import json
import sys
import threading


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    port, out = int(sys.argv[1]), sys.argv[2]
    fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1]) if "--fail-first" in sys.argv else 0
    lock = threading.Lock()
    state = {"posts": 0, "kept": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("webhook: " + (fmt % args) + "\n")

        def answer(self, code, body=b""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                state["posts"] += 1
                if state["posts"] <= fail_first:
                    self.answer(503, b"try again")
                    return
                try:
                    doc = json.loads(body)
                except ValueError:
                    self.answer(400, b"not json")
                    return
                with open(out, "a") as f:
                    f.write(json.dumps({"path": self.path, "body": doc}) + "\n")
                state["kept"] += 1
            self.answer(200, b"ok")

        def do_GET(self):
            with lock:
                self.answer(200, json.dumps(state).encode())

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
