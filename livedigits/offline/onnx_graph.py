"""Writes livedigits/models/cnn_graph.onnx, the CNN's graph that servers run in ONNX Runtime
(livedigits.models.onnx_cnn), from the layer list that livedigits.models.cnn builds in Keras and
livedigits.models.numpy_cnn runs in numpy.

    python -m livedigits.offline.onnx_graph

The weights are markers (livedigits.models.onnx_cnn.marker): a server writes each model's own over them. Rerun it
after changing CNNConfig; tests/unit/test_onnx_cnn.py fails while the file is not what this writes.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from livedigits.models.numpy_cnn import KERNEL, NUM_CLASSES, POOL, CNNConfig
from livedigits.models.onnx_cnn import GRAPH, marker

OPSET = 17


def weight_shapes(config: CNNConfig) -> list[tuple[int, ...]]:
    """Each weight's shape in ONNX's layout, in NumpyCNN's order (kernel, bias per layer)."""
    small, large = config.conv_filters
    convs = [(small, 1), (small, small), (large, small), (large, large)]
    shapes: list[tuple[int, ...]] = []
    for filters, channels in convs:
        shapes += [(filters, channels, KERNEL, KERNEL), (filters,)]
    side = ((28 - 4) // POOL - 4) // POOL  # two valid 3x3 convs, a pool, two more, a pool: 4
    flat = side * side * large
    dense = [(flat, config.dense_units), (config.dense_units,), (config.dense_units, NUM_CLASSES), (NUM_CLASSES,)]
    return [*shapes, *dense]


def graph_bytes(config: CNNConfig = CNNConfig()) -> bytes:
    """The serialised ONNX model: (n, 28, 28) float32 "x" -> (n, 10) probabilities "probabilities"."""
    shapes = weight_shapes(config)
    names = [f"w{i}" for i in range(len(shapes))]
    initializers = [numpy_helper.from_array(marker(i, shape), names[i]) for i, shape in enumerate(shapes)]
    initializers.append(numpy_helper.from_array(np.array([1], np.int64), "channel_axis"))
    initializers.append(numpy_helper.from_array(np.array([-1, shapes[8][0]], np.int64), "flat_shape"))
    node = helper.make_node
    nodes = [node("Unsqueeze", ["x", "channel_axis"], ["a"])]
    current = "a"
    for layer in range(4):
        nodes.append(node("Conv", [current, names[2 * layer], names[2 * layer + 1]], [f"conv{layer}"]))
        nodes.append(node("Relu", [f"conv{layer}"], [f"relu{layer}"]))
        current = f"relu{layer}"
        if layer % 2 == 1:
            nodes.append(node("MaxPool", [current], [f"pool{layer}"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]))
            current = f"pool{layer}"
    # Keras flattens (h, w, c): the channels go last first.
    nodes.append(node("Transpose", [current], ["channels_last"], perm=[0, 2, 3, 1]))
    nodes.append(node("Reshape", ["channels_last", "flat_shape"], ["flat"]))
    nodes.append(node("Gemm", ["flat", names[8], names[9]], ["dense"]))
    nodes.append(node("Relu", ["dense"], ["hidden"]))
    nodes.append(node("Gemm", ["hidden", names[10], names[11]], ["logits"]))
    nodes.append(node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", NUM_CLASSES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="livedigits")
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read
    return model.SerializeToString()


def main() -> None:
    GRAPH.write_bytes(graph_bytes())
    print(f"wrote {GRAPH} ({GRAPH.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
