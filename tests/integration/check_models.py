#!/usr/bin/python3
"""check_models.py - runs onnx.checker.check_model over (original, rewritten)
pairs of ONNX files, for tests/integration/test_writer.sh.

Reads "ORIGINAL<TAB>WRITTEN" lines on stdin.  For each pair: if the
original itself fails the checker it prints "SKIP name: original fails the
checker"; else the rewritten file must pass the checker and keep the
original's graph: node by node the same op, domain, inputs, outputs and
attributes (subgraphs compared the same way), the same graph inputs, outputs,
opsets and initializer values - "PASS name" or "FAIL name:
reason".  With --checker-only (optimized models, whose graphs change on
purpose) only the checker is asked.  One interpreter for all files keeps
the test fast.
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def summary(model):
    g = model.graph
    return {
        "ops": [(n.domain or "", n.op_type) for n in g.node],
        "inputs": [i.name for i in g.input],
        "outputs": [o.name for o in g.output],
        "inits": sorted(t.name for t in g.initializer),
        "opsets": sorted(((o.domain if o.domain != "ai.onnx" else ""), o.version) for o in model.opset_import),
    }


def same_array(x, y):
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind in "fc":
        return np.array_equal(x, y, equal_nan=True)
    return np.array_equal(x, y)


def compare_attr(a, b, where):
    if a.name != b.name or a.type != b.type:
        return "%s: attribute %s/%d vs %s/%d" % (where, a.name, a.type, b.name, b.type)
    va, vb = helper.get_attribute_value(a), helper.get_attribute_value(b)
    if a.type == onnx.AttributeProto.GRAPH:
        return compare_graph(va, vb, where + "/" + a.name)
    if a.type == onnx.AttributeProto.GRAPHS:
        for k, (ga, gb) in enumerate(zip(va, vb)):
            problem = compare_graph(ga, gb, "%s/%s[%d]" % (where, a.name, k))
            if problem:
                return problem
        return None if len(va) == len(vb) else "%s: %s graph count" % (where, a.name)
    if a.type == onnx.AttributeProto.TENSOR:
        same = same_array(numpy_helper.to_array(va), numpy_helper.to_array(vb))
    elif a.type == onnx.AttributeProto.TENSORS:
        same = len(va) == len(vb) and all(same_array(numpy_helper.to_array(x), numpy_helper.to_array(y))
                                          for x, y in zip(va, vb))
    elif a.type == onnx.AttributeProto.FLOAT:
        same = np.array_equal(np.float32(va), np.float32(vb), equal_nan=True)
    elif a.type == onnx.AttributeProto.FLOATS:
        same = np.array_equal(np.float32(va), np.float32(vb), equal_nan=True)
    else:
        same = va == vb
    return None if same else "%s: attribute %s differs: %r vs %r" % (where, a.name, va, vb)


def compare_graph(ga, gb, where):
    """Node by node (kiln --level 0 keeps the file's order): op, domain, edges, attributes."""
    if len(ga.node) != len(gb.node):
        return "%s: %d vs %d nodes" % (where, len(ga.node), len(gb.node))
    for k, (na, nb) in enumerate(zip(ga.node, gb.node)):
        w = "%s node %d (%s)" % (where, k, na.op_type)
        if (na.op_type, na.domain if na.domain != "ai.onnx" else "") != (nb.op_type, nb.domain):
            return "%s: op %s/%s vs %s/%s" % (w, na.domain, na.op_type, nb.domain, nb.op_type)
        ins_a = list(na.input)
        while ins_a and not ins_a[-1]:
            ins_a.pop()  # kiln drops trailing omitted inputs
        if ins_a != list(nb.input) or list(na.output) != list(nb.output):
            return "%s: edges %s->%s vs %s->%s" % (w, ins_a, list(na.output), list(nb.input), list(nb.output))
        if len(na.attribute) != len(nb.attribute):
            return "%s: %d vs %d attributes" % (w, len(na.attribute), len(nb.attribute))
        for aa, ab in zip(na.attribute, nb.attribute):
            problem = compare_attr(aa, ab, w)
            if problem:
                return problem
    return None


def compare(orig, new):
    problem = compare_graph(orig.graph, new.graph, "graph")
    if problem:
        return problem
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


CHECKER_ONLY = "--checker-only" in sys.argv


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
        problem = None if CHECKER_ONLY else compare(orig, new)
        print(("FAIL %s: %s" % (name, problem)) if problem else ("PASS %s" % name))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
