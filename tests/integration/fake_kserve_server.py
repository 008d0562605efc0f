#!/usr/bin/python3
"""A stand-in for another KServe v2 server (Triton's JSON shapes, Python's
http.server), for test_bench_url.sh: `kiln bench --url` must measure servers
other than kiln's.  Serves model "other" (INT32 [-1,16] and FP32 [-1,3]
inputs, max_batch_size 8): metadata, config, stats (counters kept as Triton
keeps them) and infer, which checks the request (JSON or binary tensor data)
and answers every third request on a connection with chunked transfer
encoding and every tenth with HTTP 500 (the first is always a 200), so
the client's chunked reader and its error counts are exercised.  Prints
"port N" once listening on 127.0.0.1; runs until killed.
"""
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "other"
INPUTS = [{"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
          {"name": "INPUT1", "datatype": "FP32", "shape": [-1, 3]}]
SIZES = {"INT32": 4, "FP32": 4}
lock = threading.Lock()
counts = {"requests": 0, "success": 0, "fail": 0}


def stats():
    with lock:
        ok, bad = counts["success"], counts["fail"]
    cn = lambda c, ns: {"count": c, "ns": c * ns}
    return {"model_stats": [{
        "name": MODEL, "version": "1", "last_inference": 0, "inference_count": ok, "execution_count": ok,
        "inference_stats": {"success": cn(ok, 50000), "fail": cn(bad, 1000), "queue": cn(ok, 1000),
                            "compute_input": cn(ok, 2000), "compute_infer": cn(ok, 40000),
                            "compute_output": cn(ok, 3000), "cache_hit": cn(0, 0), "cache_miss": cn(0, 0)},
        "batch_stats": []}]}


def check_request(body, header_len):
    """Returns None when the infer request is well formed, else the reason."""
    req = json.loads(body[:header_len])
    binary = body[header_len:]
    off = 0
    names = []
    for t in req["inputs"]:
        names.append(t["name"])
        spec = next((i for i in INPUTS if i["name"] == t["name"]), None)
        if spec is None or t["datatype"] != spec["datatype"] or len(t["shape"]) != 2 or t["shape"][1] != spec["shape"][1]:
            return "bad input %r" % t
        count = t["shape"][0] * t["shape"][1]
        if "parameters" in t and "binary_data_size" in t["parameters"]:
            size = t["parameters"]["binary_data_size"]
            if size != count * SIZES[t["datatype"]]:
                return "bad binary_data_size"
            off += size
        elif len(t["data"]) != count:
            return "bad data length"
    if off != len(binary):
        return "binary bytes left over"
    if sorted(names) != ["INPUT0", "INPUT1"]:
        return "missing inputs"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body leave in separate writes: without this, Nagle and
        # the client's delayed ACK add 40 ms to every answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def answer(self, status, obj, chunked=False):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(data) // 2
            for part in (data[:half], data[half:]):
                self.wfile.write(b"%x;x=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_GET(self):
        base = "/v2/models/" + MODEL
        if self.path in (base, base + "/versions/1"):
            self.answer(200, {"name": MODEL, "versions": ["1"], "platform": "onnxruntime_onnx", "inputs": INPUTS,
                              "outputs": [{"name": "OUTPUT0", "datatype": "INT32", "shape": [-1, 16]}]})
        elif self.path == base + "/config":
            self.answer(200, {"name": MODEL, "platform": "onnxruntime_onnx", "max_batch_size": 8})
        elif self.path == base + "/stats":
            self.answer(200, stats())
        else:
            self.answer(404, {"error": "Request for unknown model: '%s' is not found" % self.path})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v2/models/%s/infer" % MODEL:
            self.answer(404, {"error": "unknown model"})
            return
        header_len = int(self.headers.get("Inference-Header-Content-Length", len(body)))
        self.served = getattr(self, "served", 0) + 1  # per connection: the first answer is always 200
        n = self.served
        with lock:
            counts["requests"] += 1
        problem = check_request(body, header_len)
        if problem:
            with lock:
                counts["fail"] += 1
            self.answer(400, {"error": problem})
        elif n % 10 == 0:
            with lock:
                counts["fail"] += 1
            self.answer(500, {"error": "injected failure"})
        else:
            with lock:
                counts["success"] += 1
            self.answer(200, {"model_name": MODEL, "model_version": "1",
                              "outputs": [{"name": "OUTPUT0", "datatype": "INT32", "shape": [1, 16],
                                           "data": list(range(16))}]}, chunked=n % 3 == 0)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("port", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
