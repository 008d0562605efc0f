#!/usr/bin/python3
"""make_demo_repository.py MODELS_DIR - lays out the demo model repository
that `make run` serves: MODELS_DIR/repository/demo_mlp/1/model.onnx (the
demo MLP made by make_demo_models.py) with a Triton config.pbtxt that turns
on dynamic batching.  Made at build time, never committed."""
import os
import shutil
import sys

CONFIG = """name: "demo_mlp"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 500 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""


def main():
    models = sys.argv[1] if len(sys.argv) > 1 else "build/models"
    target = os.path.join(models, "repository", "demo_mlp")
    os.makedirs(os.path.join(target, "1"), exist_ok=True)
    shutil.copyfile(os.path.join(models, "demo_mlp.onnx"), os.path.join(target, "1", "model.onnx"))
    with open(os.path.join(target, "config.pbtxt"), "w") as f:
        f.write(CONFIG)


if __name__ == "__main__":
    main()
