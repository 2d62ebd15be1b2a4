"""The CNN's forward pass in ONNX Runtime: what servers predict with (twice as fast as numpy's for one drawing, five
times for a batch of 64, and it leaves the GIL to other requests while it runs).

A serving process has the graph but not the `onnx` package (12 MB a worker): `cnn_graph.onnx`, written by
livedigits/offline/onnx_graph.py, holds the network with a marker in place of each weight (tensor i's element j is
i * 2**20 + j, so that every marker's bytes occur once in the file). A model's session is the graph with its own
weights written over the markers, byte for byte; then ONNX Runtime optimises it with those weights as constants
(ONNX Runtime's `add_initializer` would skip that: its weights are not folded into the faster layouts).
tests/unit/test_onnx_cnn.py holds it to NumpyCNN to 1e-5 and the file to its builder.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from livedigits.models.numpy_cnn import NumpyCNN

GRAPH = Path(__file__).with_name("cnn_graph.onnx")
MARKER_STRIDE = 2**20  # more elements than any one weight holds; 12 tensors' markers stay exact in float32


def onnx_layout(index: int, weight: np.ndarray) -> np.ndarray:
    """A weight in NumpyCNN's (Keras's) order -> ONNX's: a conv kernel (kh, kw, c, f) -> (f, c, kh, kw)."""
    return np.transpose(weight, (3, 2, 0, 1)) if weight.ndim == 4 else weight


def marker(index: int, shape: tuple[int, ...]) -> np.ndarray:
    """What stands for weight `index` (of `shape`, ONNX's layout) in the graph file."""
    return (index * MARKER_STRIDE + np.arange(int(np.prod(shape)), dtype=np.float32)).reshape(shape)


@cache
def graph_and_offsets() -> tuple[bytes, tuple[int, ...]]:
    """The graph file, and where each weight's marker starts in it (read once per process)."""
    graph = GRAPH.read_bytes()
    offsets = []
    for index in range(NumpyCNN.N_WEIGHTS):
        # Markers only need their first element to be told apart: the weights' sizes are checked when splicing.
        head = np.float32(index * MARKER_STRIDE).tobytes() + np.float32(index * MARKER_STRIDE + 1).tobytes()
        offset = graph.find(head)
        if offset < 0 or graph.find(head, offset + 1) >= 0:
            raise ValueError(f"{GRAPH.name}: the marker of weight {index} is not there exactly once")
        offsets.append(offset)
    return graph, tuple(offsets)


def session_of(weights: list[np.ndarray]) -> ort.InferenceSession:
    """An ONNX Runtime session of the CNN holding `weights` (NumpyCNN's order and float32)."""
    graph, offsets = graph_and_offsets()
    model = bytearray(graph)
    for index, (offset, weight) in enumerate(zip(offsets, weights, strict=True)):
        data = np.ascontiguousarray(onnx_layout(index, weight), dtype="<f4").tobytes()
        end = offset + len(data)
        last, beyond = (np.float32(index * MARKER_STRIDE + weight.size + k).tobytes() for k in (-1, 0))
        if model[end - 4 : end] != last or model[end : end + 4] == beyond:  # the marker ends where the weight does
            raise ValueError(f"weight {index} of shape {weight.shape} is not the size the graph has for it")
        model[offset:end] = data
    options = ort.SessionOptions()
    # One thread a run: a worker's requests run side by side on the dyno's cores, not one request on all of them.
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    # No arena: it would keep a batch's largest buffers (megabytes) for as long as the model serves.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(bytes(model), options, providers=["CPUExecutionProvider"])


class OnnxCNN(NumpyCNN):
    """NumpyCNN (its weights and feature maps) whose probabilities ONNX Runtime computes; read-only, thread-safe."""

    def __init__(self, weights: list[np.ndarray]):
        super().__init__(weights)
        self._session = session_of(self.weights)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 28, 28) -> (n, 10), equal to NumpyCNN's to 1e-5."""
        return self._session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
