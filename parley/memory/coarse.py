"""A fast first pass over a memory's vectors: int8 copies, scanned by onnxruntime, with a bound.

At 100k chunks the float32 matrix is 205 MB, and multiplying it by a query vector is limited
by memory bandwidth (~7 ms of one core here, more when other processes share the memory bus).
An int8 copy (one scale per row) is a quarter of that, and onnxruntime's DynamicQuantizeMatMul
scans it in about a third of the time. Its cosines are approximate, but each comes with a
bound on its error, so search.py keeps every chunk that could still be among the best and
scores only those exactly: the results are the exact search's.

The bound, for a row ``v = s_v·v8 + e_v`` and the query ``q = s_q·q8 + e_q`` as onnxruntime
quantizes it (uint8, one scale): ``|q·v − s_q·s_v·q8·v8| ≤ |e_q|·|v|₁ + s_v/2·|s_q·q8|₁``, with
``|e_q| ≤ s_q`` (half a step, and half again for the rounded zero point).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parley.onnx_session import single_threaded

MIN_ROWS = 20_000  # below this the float32 product is already cheap


def _session(columns: np.ndarray, scales: np.ndarray) -> Any:
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401 - only whether it is there
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    dims, rows = columns.shape
    weights = [
        numpy_helper.from_array(columns, "v"),
        numpy_helper.from_array(scales, "s"),
        numpy_helper.from_array(np.zeros(rows, dtype=np.int8), "z"),
    ]
    node = helper.make_node("DynamicQuantizeMatMul", ["q", "v", "s", "z"], ["y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "coarse_cosines",
        [helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, dims])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, rows])],
        weights,
    )
    return single_threaded(graph)


class Coarse:
    def __init__(self, session: Any, scales: np.ndarray, l1: np.ndarray) -> None:
        self.session = session
        self.half_scales = scales / 2
        self.l1 = l1

    @classmethod
    def build(cls, vectors: np.ndarray) -> Coarse | None:
        """For a float32 matrix of unit rows; None when too small to gain or without onnxruntime."""
        if len(vectors) < MIN_ROWS or not vectors.shape[1]:
            return None
        scales = (np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127).astype(np.float32)
        quantized = np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.int8)
        session = _session(np.ascontiguousarray(quantized.T), scales)
        if session is None:
            return None
        return cls(session, scales, np.abs(vectors).sum(axis=1, dtype=np.float32))

    def scan(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(approximate cosine, a bound on its error) per row."""
        q = np.asarray(q, dtype=np.float32)
        approx = self.session.run(None, {"q": q[None, :]})[0][0]
        step = (max(float(q.max()), 0.0) - min(float(q.min()), 0.0)) / 255
        bound = self.l1 * np.float32(step)
        bound += self.half_scales * np.float32(float(np.abs(q).sum()) + len(q) * step)
        bound += np.float32(1e-5)  # float rounding in the scales' products
        return approx, bound
