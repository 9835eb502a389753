#!/usr/bin/python3
"""Writes the seed models of the onnx_import fuzz target (fuzz/corpus/onnx_import/): small ONNX models, built with
the ONNX project's Python helpers (python3-onnx), that together use every operator and most attributes the importer
takes, plus a few it refuses.

    /usr/bin/python3 fuzz/make_onnx_seeds.py [OUT_DIR]      (default: fuzz/corpus/onnx_import)
"""
import os
import sys

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper

rng = np.random.default_rng(0)


def const(name, shape, dtype=np.float32):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(dtype), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def model(name, nodes, inits, in_shape, out_shape, batch="N", opset=13):
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch] + in_shape[1:] if batch else in_shape)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch] + out_shape[1:] if batch else out_shape)
    g = helper.make_graph(nodes, name, [inp], [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="splitleak-seeds")
    m.ir_version = 7
    return m


N = helper.make_node
seeds = {}

# a convolution stem with every geometry attribute, batch norm after it (folded) and after a join (kept)
seeds["conv-bn-residual"] = model("conv_bn_residual", [
    N("Conv", ["x", "w1", "b1"], ["c1"], name="stem", strides=[2, 1], pads=[1, 0, 0, 1], dilations=[1, 2], group=1),
    N("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["n1"], name="bn1", epsilon=1e-3),
    N("Relu", ["n1"], ["r1"], name="act1"),
    N("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=2),
    N("Add", ["r1", "c2"], ["s"], name="join"),
    N("BatchNormalization", ["s", "g", "be", "mu", "var"], ["n2"], name="bn2"),
    N("GlobalAveragePool", ["n2"], ["p"], name="gap"),
    N("Flatten", ["p"], ["f"], name="flat"),
    N("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1, alpha=0.5, beta=2.0),
], [const("w1", [4, 1, 3, 3]), const("b1", [4]), const("g", [4]), const("be", [4]), const("mu", [4]),
    numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5, "var"),
    const("w2", [4, 2, 3, 3]), const("wf", [3, 4]), const("bf", [3])], [1, 1, 6, 6], [1, 3])

# pooling of every kind, the activations, softmax
seeds["pools-activations"] = model("pools", [
    N("MaxPool", ["x"], ["m"], name="maxpool", kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 0], ceil_mode=1),
    N("LeakyRelu", ["m"], ["l"], name="leaky", alpha=0.2),
    N("AveragePool", ["l"], ["a"], name="avgpool", kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    N("Tanh", ["a"], ["t"], name="tanh"),
    N("AveragePool", ["t"], ["a2"], name="avg_same", kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
    N("Sigmoid", ["a2"], ["s"], name="sigmoid"),
    N("Flatten", ["s"], ["f"], name="flat"),
    N("Softmax", ["f"], ["y"], name="softmax", axis=1),
], [], [1, 2, 5, 5], [1, 48])

# MatMul + Add (one linear layer), a Reshape by a Constant, Squeeze / Unsqueeze, a Transpose of a constant,
# Dropout and Identity
seeds["matmul-reshape"] = model("matmul_reshape", [
    N("Constant", [], ["shape"], name="shape_const", value=numpy_helper.from_array(np.array([1, -1], np.int64))),
    N("Reshape", ["x", "shape"], ["r"], name="reshape"),
    N("Transpose", ["wt"], ["w"], name="transpose_w", perm=[1, 0]),
    N("MatMul", ["r", "w"], ["mm"], name="matmul"),
    N("Add", ["mm", "bias"], ["lin"], name="bias_add"),
    N("Unsqueeze", ["lin", "axes"], ["u"], name="unsqueeze"),
    N("Dropout", ["u"], ["d"], name="dropout"),
    N("Squeeze", ["d", "axes"], ["q"], name="squeeze"),
    N("Identity", ["q"], ["y"], name="identity"),
], [const("wt", [5, 12]), const("bias", [5]), ints("axes", [2])], [1, 3, 2, 2], [1, 5], batch=None)

# a transposed convolution (output padding), a 1-d convolution
seeds["convtranspose"] = model("convtranspose", [
    N("ConvTranspose", ["x", "wt", "bt"], ["t"], name="up", strides=[2, 2], pads=[1, 0, 0, 1],
      output_padding=[1, 0]),
    N("Relu", ["t"], ["y"], name="relu"),
], [const("wt", [2, 3, 3, 3]), const("bt", [3])], [1, 2, 3, 3], [1, 3, 7, 6])
seeds["conv1d"] = model("conv1d", [
    N("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3], strides=[2], pads=[1, 1], auto_pad="NOTSET"),
    N("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2]),
], [const("w", [3, 2, 3])], [1, 2, 8], [1, 3, 3])

# refused: an operator outside the list, a training-mode batch norm, two outputs
seeds["refused-elu"] = model("elu", [N("Elu", ["x"], ["y"], name="elu")], [], [1, 2], [1, 2])
m = model("two_outputs", [N("Relu", ["x"], ["y"], name="a"), N("Sigmoid", ["x"], ["z"], name="b")], [], [1, 2], [1, 2])
m.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2]))
seeds["refused-two-outputs"] = m

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus",
                                                          "onnx_import")
os.makedirs(out, exist_ok=True)
for name, m in seeds.items():
    if not name.startswith("refused"):
        checker.check_model(m)
    with open(os.path.join(out, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())
    print(f"wrote {name}.onnx ({m.ByteSize()} bytes)")
