#!/usr/bin/python3
"""check_models.py - runs onnx.checker.check_model over (original, rewritten)
pairs of ONNX files, for tests/integration/test_writer.sh.

Reads "ORIGINAL<TAB>WRITTEN" lines on stdin.  For each pair: if the
original itself fails the checker it prints "SKIP name: original fails the
checker"; else the rewritten file must pass the checker and keep the
original's graph (same node op types and count, same inputs, outputs and
initializer names, same initializer values) - "PASS name" or "FAIL name:
reason".  One interpreter for all files keeps the test fast.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def summary(model):
    g = model.graph
    return {
        "ops": [(n.domain or "", n.op_type) for n in g.node],
        "inputs": [i.name for i in g.input],
        "outputs": [o.name for o in g.output],
        "inits": sorted(t.name for t in g.initializer),
        "opsets": sorted(((o.domain if o.domain != "ai.onnx" else ""), o.version) for o in model.opset_import),
    }


def compare(orig, new):
    a, b = summary(orig), summary(new)
    # kiln may keep nodes in a different (still topological) order
    if sorted(a["ops"]) != sorted(b["ops"]):
        return "nodes differ: %s vs %s" % (a["ops"], b["ops"])
    for key in ("inputs", "outputs", "inits", "opsets"):
        if a[key] != b[key]:
            return "%s differ: %s vs %s" % (key, a[key], b[key])
    new_inits = {t.name: t for t in new.graph.initializer}
    for t in orig.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            continue
        x, y = numpy_helper.to_array(t), numpy_helper.to_array(new_inits[t.name])
        if x.dtype != y.dtype or x.shape != y.shape:
            return "initializer %s: %s%s vs %s%s" % (t.name, x.dtype, x.shape, y.dtype, y.shape)
        if x.dtype.kind in "fc":
            same = np.array_equal(x, y, equal_nan=True)
        else:
            same = np.array_equal(x, y)
        if not same:
            return "initializer %s values differ" % t.name
    return None


def main():
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        orig_path, new_path = line.split("\t")
        name = orig_path
        try:
            orig = onnx.load(orig_path)
            onnx.checker.check_model(orig)
        except Exception as e:  # noqa: BLE001 - any checker failure
            print("SKIP %s: original fails the checker (%s)" % (name, str(e).splitlines()[0][:80]))
            continue
        try:
            new = onnx.load(new_path)
            onnx.checker.check_model(new)
        except Exception as e:  # noqa: BLE001
            msg = " ".join(str(e).split())[:300]
            print("FAIL %s: checker: %s" % (name, msg))
            continue
        problem = compare(orig, new)
        print(("FAIL %s: %s" % (name, problem)) if problem else ("PASS %s" % name))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
