"""A deliberately slowed copy of a real model: the same network and the same logits, plus a
chain of large matrix products on the input whose result is multiplied by zero and added to
the logits, so ONNX Runtime must compute it (it is not constant) and the answers do not change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def slowed_copy(src: Path, dst: Path, products: int = 3, width: int = 1024) -> Path:
    model = onnx.load(str(src))
    graph = model.graph
    image, logits = graph.input[0].name, graph.output[0].name
    for node in graph.node:  # the original logits now feed the final Add
        node.output[:] = [f"{logits}_fast" if o == logits else o for o in node.output]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(np.array([-1, dims[-1]], np.int64), "slow_shape"),
               numpy_helper.from_array(rng.standard_normal((dims[-1], width), np.float32) * .05,
                                       "slow_w0"),
               numpy_helper.from_array(np.zeros((), np.float32), "slow_zero")]
    nodes = [helper.make_node("Reshape", [image, "slow_shape"], ["slow_x"]),
             helper.make_node("MatMul", ["slow_x", "slow_w0"], ["slow_h0"])]
    for i in range(1, products + 1):
        weights.append(numpy_helper.from_array(
            rng.standard_normal((width, width), np.float32) * .03, f"slow_w{i}"))
        nodes += [helper.make_node("MatMul", [f"slow_h{i - 1}", f"slow_w{i}"], [f"slow_m{i}"]),
                  helper.make_node("Tanh", [f"slow_m{i}"], [f"slow_h{i}"])]
    nodes += [helper.make_node("ReduceMean", [f"slow_h{products}"], ["slow_mean"], keepdims=0),
              helper.make_node("Mul", ["slow_mean", "slow_zero"], ["slow_nothing"]),
              helper.make_node("Add", [f"{logits}_fast", "slow_nothing"], [logits])]
    graph.node.extend(nodes)
    graph.initializer.extend(weights)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["name"] = dst.stem
    dst.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return dst
