"""A stand-in LLM: answers the Anthropic Messages API after a fixed delay.

POST /v1/messages answers like the real API (the shape Tasker's `query_llm`
reads, see tests/support/fake_llm.rs) after --delay seconds. GET /stats
answers the calls in flight now, the most there ever were at once, and how
many calls were answered: the autoscaling simulation plots the first and
checks the last against the number of tasks.

Usage: fake_llm.py --delay 0.5 --port-file PATH   (binds 127.0.0.1, port 0)
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.received = 0
        self.answered = 0

    def enter(self):
        with self.lock:
            self.received += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def leave(self):
        with self.lock:
            self.in_flight -= 1
            self.answered += 1

    def snapshot(self):
        with self.lock:
            return {
                "in_flight": self.in_flight,
                "most_in_flight": self.most_in_flight,
                "received": self.received,
                "answered": self.answered,
            }


def handler(stats, delay):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: one line per call is noise
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/stats":
                self.reply(200, stats.snapshot())
            else:
                self.reply(404, {"type": "error", "error": {"type": "not_found_error"}})

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/messages":
                self.reply(404, {"type": "error", "error": {"type": "not_found_error"}})
                return
            stats.enter()
            time.sleep(delay)
            # Counted out before the reply is written: once the client has
            # it, it may start another call under the same permit.
            stats.leave()
            prompt = json.dumps(request.get("messages", ""))
            self.reply(
                200,
                {
                    "id": "msg_stand_in",
                    "type": "message",
                    "role": "assistant",
                    "model": request.get("model", "stand-in"),
                    "content": [{"type": "text", "text": "Bonjour"}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": max(1, len(prompt) // 4), "output_tokens": 3},
                },
            )

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: every worker connects at once


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per call")
    parser.add_argument("--port-file", required=True, help="the bound port is written here")
    args = parser.parse_args()
    stats = Stats()
    server = Server(("127.0.0.1", 0), handler(stats, args.delay))
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
