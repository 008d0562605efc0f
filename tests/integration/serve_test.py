#!/usr/bin/python3
"""Integration test of `kiln serve`: starts real servers on free loopback
ports and talks HTTP to them (Python's standard library only).

Covers every endpoint, JSON and binary tensors, every error class, dynamic
batching (fewer executions than requests), the queue limit, poll-mode
reload under load, explicit load/unload with a token, /metrics through
promtool, and graceful stop on SIGTERM.  Ends with "N passed, N failed".
"""
import http.client
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KILN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/kiln")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)


def save(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.ir_version = 8
    onnx.save(model, path)


def add_model(n=4):
    io = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", n]) for x in "ABC"]
    g = helper.make_graph([helper.make_node("Add", ["A", "B"], ["C"]),
                           helper.make_node("Sub", ["A", "B"], ["D"])], "add", io[:2],
                          [io[2], helper.make_tensor_value_info("D", TensorProto.FLOAT, ["N", n])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def slow_model():
    """Tens of milliseconds per run, whatever the kernels' speed: the [1, 512]
    input is expanded to [512, 512] and goes through eight 512x512 MatMuls
    (2 GFLOP), then is summed back to [1, 512]; queues fill behind it."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((512, 512)) * 0.01).astype(np.float32), "W")
    shape = numpy_helper.from_array(np.array([512, 512], np.int64), "shape")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    nodes, prev = [helper.make_node("Expand", ["X", "shape"], ["wide"])], "wide"
    for i in range(8):
        nodes.append(helper.make_node("MatMul", [prev, "W"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("ReduceSum", [prev, "axes"], ["Y"], keepdims=1))
    g = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 512])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 512])], [w, shape, axes])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


ADD_CONFIG = """name: "add"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "C" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "D" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 20000 }
instance_group [ { count: 1 kind: KIND_CPU } ]
model_warmup [ { name: "w" } ]
"""

SLOW_CONFIG = """name: "slow"
max_batch_size: 0
dynamic_batching { default_queue_policy { max_queue_size: 2 } }
"""


class Server:
    def __init__(self, repo, *extra):
        self.proc = subprocess.Popen([KILN, "serve", "--model-repository", repo, "--http-port", "0",
                                      "--metrics-port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = self.metrics_port = None
        deadline = time.time() + 30
        while time.time() < deadline and (self.port is None or self.metrics_port is None):
            line = self.proc.stdout.readline()
            if not line:
                break
            if "KServe v2 HTTP on" in line:
                self.port = int(line.rsplit(":", 1)[1].split("/")[0])
            if "metrics on" in line:
                self.metrics_port = int(line.split("/metrics")[0].rsplit(":", 1)[1])
        if self.port is None:
            raise RuntimeError("server did not start: " + self.proc.stderr.read())

    def request(self, method, path, body=None, headers=None, port=None):
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        c.request(method, path, body, headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def json(self, method, path, body=None, headers=None):
        st, h, data = self.request(method, path, body, headers)
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, data

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1, ""
        return self.proc.returncode, out


def infer_body(a, b, outputs=None, req_id=None):
    body = {"inputs": [{"name": "A", "shape": list(np.shape(a)), "datatype": "FP32", "data": np.ravel(a).tolist()},
                       {"name": "B", "shape": list(np.shape(b)), "datatype": "FP32", "data": np.asarray(b).tolist()}]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    if req_id:
        body["id"] = req_id
    return json.dumps(body)


def main():
    tmp = tempfile.mkdtemp(prefix="kiln_serve_test_")
    repo = os.path.join(tmp, "repo")
    save(add_model(), f"{repo}/add/1/model.onnx")
    open(f"{repo}/add/config.pbtxt", "w").write(ADD_CONFIG)
    save(add_model(), f"{repo}/plain/3/model.onnx")        # no config.pbtxt: completed from the model
    save(slow_model(), f"{repo}/slow/1/model.onnx")
    open(f"{repo}/slow/config.pbtxt", "w").write(SLOW_CONFIG)
    os.makedirs(f"{repo}/broken/1")
    open(f"{repo}/broken/1/model.onnx", "wb").write(b"\x08\x07\x12\xff")  # truncated protobuf
    s = Server(repo, "--max-body-bytes", "100000")
    try:
        # server and health
        st, j = s.json("GET", "/v2")
        check(st == 200 and j["name"] == "kiln" and "binary_tensor_data" in j["extensions"], "GET /v2")
        check(s.request("GET", "/v2/health/live")[0] == 200, "live")
        check(s.request("GET", "/v2/health/ready")[0] == 200, "ready")
        # metadata, readiness, config
        st, j = s.json("GET", "/v2/models/add")
        check(st == 200 and j["versions"] == ["1"] and j["inputs"][0] == {"name": "A", "datatype": "FP32", "shape": [-1, 4]},
              f"model metadata {j}")
        check(s.request("GET", "/v2/models/add/versions/1")[0] == 200, "version metadata")
        check(s.request("GET", "/v2/models/add/versions/2")[0] == 404, "unknown version metadata is 404")
        check(s.request("GET", "/v2/models/add/ready")[0] == 200, "model ready")
        check(s.request("GET", "/v2/models/add/versions/1/ready")[0] == 200, "version ready")
        check(s.request("GET", "/v2/models/broken/ready")[0] == 404, "a model that failed to load is not ready")
        st, j = s.json("GET", "/v2/models/add/config")
        check(st == 200 and j["max_batch_size"] == 8 and j["dynamic_batching"]["preferred_batch_size"] == [8]
              and j["input"][0]["data_type"] == "TYPE_FP32", f"config {j}")
        st, j = s.json("GET", "/v2/models/plain")
        check(st == 200 and j["versions"] == ["3"] and [i["name"] for i in j["inputs"]] == ["A", "B"], "auto-completed config")
        # JSON infer with nested data, id and an output subset
        st, j = s.json("POST", "/v2/models/add/infer", infer_body([[1, 2, 3, 4]], [[10, 20, 30, 40]], ["D"], "req-7"))
        check(st == 200 and j["id"] == "req-7" and len(j["outputs"]) == 1 and j["outputs"][0]["name"] == "D"
              and j["outputs"][0]["data"] == [-9, -18, -27, -36], f"JSON infer {j}")
        check(st == 200 and "server_time_us" in j["parameters"], "server time in response parameters")
        st, j = s.json("POST", "/v2/models/plain/versions/3/infer", infer_body([[1, 1, 1, 1]], [[2, 2, 2, 2]]))
        check(st == 200 and j["model_version"] == "3" and j["outputs"][0]["data"] == [3, 3, 3, 3], "versioned infer")
        # binary request and response
        hdr = json.dumps({"inputs": [
            {"name": "A", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
            {"name": "B", "shape": [2, 4], "datatype": "FP32", "data": [1] * 8}],
            "parameters": {"binary_data_output": True}}).encode()
        st, h, data = s.request("POST", "/v2/models/add/infer", hdr + struct.pack("<8f", *range(8)),
                                {"Inference-Header-Content-Length": str(len(hdr))})
        n = int(h.get("Inference-Header-Content-Length", "0"))
        meta = json.loads(data[:n]) if n else {}
        ok = st == 200 and n and len(data) == n + 64
        check(ok and struct.unpack("<8f", data[n:n + 32]) == tuple(float(i + 1) for i in range(8))
              and meta["outputs"][0]["parameters"]["binary_data_size"] == 32, "binary infer")
        # errors
        st, j = s.json("POST", "/v2/models/add/infer", "{not json")
        check(st == 400 and "malformed JSON" in j["error"], f"malformed JSON -> 400 {j}")
        st, j = s.json("POST", "/v2/models/add/infer", infer_body([[1, 2, 3, 4]], [[1, 2, 3, 4]]).replace("FP32", "FP99", 1))
        check(st == 400 and "unknown datatype" in j["error"], "unknown datatype -> 400")
        st, j = s.json("POST", "/v2/models/add/infer", infer_body([[1, 2, 3]], [[1, 2, 3]]))
        check(st == 400 and "shape" in j["error"], f"wrong shape -> 400 {j}")
        st, j = s.json("POST", "/v2/models/add/infer", json.dumps({"inputs": [
            {"name": "A", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]},
            {"name": "B", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}))
        check(st == 400 and "holds 4 elements, data has 3" in j["error"], "shape/data mismatch -> 400")
        st, j = s.json("POST", "/v2/models/add/infer", json.dumps({"inputs": [
            {"name": "A", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}))
        check(st == 400 and "missing" in j["error"], "missing input -> 400")
        st, j = s.json("POST", "/v2/models/add/infer", infer_body([[1, 2, 3, 4]], [[1, 2, 3, 4]], ["nope"]))
        check(st == 400 and "nope" in j["error"], "unknown output -> 400")
        st, j = s.json("POST", "/v2/models/add/infer", json.dumps({"inputs": [
            {"name": "A", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 999}},
            {"name": "B", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}))
        check(st == 400 and "binary" in j["error"], "binary size beyond the body -> 400")
        check(s.request("POST", "/v2/models/nope/infer", infer_body([[1]], [[1]]))[0] == 404, "unknown model -> 404")
        check(s.request("POST", "/v2/models/add/versions/9/infer", infer_body([[1]], [[1]]))[0] == 404, "unknown version -> 404")
        check(s.request("GET", "/v2/models/..%2F..%2Fetc/config")[0] in (400, 404), "path traversal refused")
        check(s.request("POST", "/v2/models/add/infer", "x" * 200000)[0] == 413, "body over the limit -> 413")
        st, h, data = s.request("GET", "/v2/models/add/infer")
        check(st == 405 and json.loads(data)["error"], "wrong method -> 405 with an error body")
        # dynamic batching: concurrent single-row requests run as fewer executions
        before = s.json("GET", "/v2/models/add/stats")[1]["model_stats"][0]
        codes = []
        def client(i):
            for k in range(10):
                codes.append(s.request("POST", "/v2/models/add/infer", infer_body([[i, k, 0, 0]], [[0, 0, 0, 0]]))[0])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        after = s.json("GET", "/v2/models/add/stats")[1]["model_stats"][0]
        reqs = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
        execs = after["execution_count"] - before["execution_count"]
        check(codes.count(200) == 80 and reqs == 80, f"80 concurrent requests succeed ({codes.count(200)})")
        check(execs < reqs, f"batching: {execs} executions for {reqs} requests")
        check(any(b["batch_size"] > 1 for b in after["batch_stats"]), "batch_stats shows batches larger than 1")
        for key in ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output"):
            check(key in after["inference_stats"] and "ns" in after["inference_stats"][key], f"stats has {key}")
        # queue limit: max_queue_size 2 on a slow model
        codes = []
        xbody = json.dumps({"inputs": [{"name": "X", "shape": [1, 512], "datatype": "FP32", "data": [0.5] * 512}]})
        def slow_client():
            codes.append(s.request("POST", "/v2/models/slow/infer", xbody)[0])
        threads = [threading.Thread(target=slow_client) for _ in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        check(503 in codes and 200 in codes and set(codes) <= {200, 503}, f"queue limit answers 503: {sorted(codes)}")
        time.sleep(1.2)  # the monitor samples once a second
        st, h, data = s.request("GET", "/metrics", port=s.metrics_port)
        rejected = [l for l in data.decode().splitlines()
                    if l.startswith('nv_inference_request_failure{model="slow",version="1",reason="REJECTED"}')]
        check(rejected and float(rejected[0].split()[-1]) == codes.count(503),
              f"rejections counted with reason REJECTED: {rejected} vs {codes.count(503)}")
        # metrics
        st, h, data = s.request("GET", "/metrics", port=s.metrics_port)
        text = data.decode()
        check(st == 200 and 'nv_inference_request_success{model="add",version="1"}' in text, "nv_inference metrics")
        check("nv_inference_pending_request_count" in text, "pending request gauge")
        check('nv_inference_compute_input_duration_us{model="add",version="1"}' in text
              and 'nv_inference_compute_output_duration_us{model="add",version="1"}' in text, "compute input/output counters")
        inf = [l for l in text.splitlines()
               if l.startswith('kiln_inference_request_duration_us_bucket{model="add",version="1",le="+Inf"}')]
        check(inf and float(inf[0].split()[-1]) >= 80, f"latency histogram counts the requests: {inf}")
        if shutil.which("promtool"):
            # promtool 2.42 has no --lint switch: it reports parse errors and naming lint alike.
            # Triton's metric names (nv_inference_count, *_duration_us ...) are a contract, so
            # only naming lint is tolerated; any other line (a format error) fails.
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            naming = ('should have "_total" suffix', 'should not have "_count" suffix',
                      'should not contain abbreviated units', 'should not have "_sum" suffix',
                      'should not have "_bucket" suffix')
            other = [l for l in (p.stdout + p.stderr).splitlines() if l.strip() and not any(n in l for n in naming)]
            check(not other, "promtool check metrics: " + "\n".join(other))
        # repository API in none mode refuses control
        st, j = s.json("POST", "/v2/repository/index")
        names = {m["name"] for m in j}
        check(st == 200 and {"add", "plain", "slow", "broken"} <= names, f"repository index {j}")
        check(s.request("POST", "/v2/repository/models/add/unload")[0] == 400, "unload refused in none mode")
        # graceful stop with requests in flight
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(
            s.request("POST", "/v2/models/slow/infer", xbody)[0])) for _ in range(2)]
        [t.start() for t in threads]
        time.sleep(0.05)
        rc, out = s.stop()
        [t.join() for t in threads]
        check(rc == 0, f"SIGTERM exits 0 (got {rc})")
        check(all(c == 200 for c in codes) and len(codes) == 2, f"in-flight requests finish on SIGTERM: {codes}")
    finally:
        if s.proc.poll() is None:
            s.proc.kill()

    # explicit mode with a token
    s = Server(repo, "--model-control-mode", "explicit", "--load-model", "add", "--management-token", "sekret")
    try:
        check(s.request("GET", "/v2/models/add/ready")[0] == 200, "--load-model loads at start")
        check(s.request("GET", "/v2/models/plain/ready")[0] == 404, "explicit mode loads nothing else")
        check(s.request("POST", "/v2/repository/models/plain/load")[0] == 401, "load without the token -> 401")
        auth = {"Authorization": "Bearer sekret"}
        check(s.request("POST", "/v2/repository/models/plain/load", "", auth)[0] == 200, "load with the token")
        check(s.request("GET", "/v2/models/plain/ready")[0] == 200, "loaded model is ready")
        check(s.request("POST", "/v2/repository/models/plain/unload", "", auth)[0] == 200, "unload")
        check(s.request("GET", "/v2/models/plain/ready")[0] == 404, "unloaded model is gone")
        check(s.request("POST", "/v2/repository/models/ghost/load", "", auth)[0] == 404, "load of an unknown model -> 404")
    finally:
        s.stop()

    # poll mode: a new version appears while a load runs; no request fails
    s = Server(repo, "--model-control-mode", "poll", "--repository-poll-secs", "1")
    try:
        stop = threading.Event()
        codes = []
        def loader():
            while not stop.is_set():
                codes.append(s.request("POST", "/v2/models/plain/infer", infer_body([[1, 2, 3, 4]], [[1, 1, 1, 1]]))[0])
        threads = [threading.Thread(target=loader) for _ in range(4)]
        [t.start() for t in threads]
        time.sleep(0.5)
        save(add_model(), f"{repo}/plain/4/model.onnx")
        deadline = time.time() + 15
        versions = []
        while time.time() < deadline:
            st, j = s.json("GET", "/v2/models/plain")
            versions = j.get("versions", []) if st == 200 else []
            if versions == ["4"]:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        [t.join() for t in threads]
        check(versions == ["4"], f"poll mode picked up version 4: {versions}")
        check(len(codes) > 20 and all(c == 200 for c in codes), f"no failed request during reload ({len(codes)} sent, {len(codes) - codes.count(200)} failed)")
        shutil.rmtree(f"{repo}/slow")
        deadline = time.time() + 15
        while time.time() < deadline and s.request("GET", "/v2/models/slow/ready")[0] != 404:
            time.sleep(0.2)
        check(s.request("GET", "/v2/models/slow/ready")[0] == 404, "poll mode unloads a removed model")
    finally:
        rc, _ = s.stop()
        check(rc == 0, "poll-mode server stops cleanly")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
