"""An onnxruntime session for a graph Parley builds itself (from weights already on disk)."""

from __future__ import annotations

from typing import Any


def single_threaded(graph: Any) -> Any:
    """The session for ``graph`` (standard ops and the com.microsoft ones), on one thread: the
    calls already run side by side, one per core, as numpy's BLAS is set up too."""
    import onnxruntime  # type: ignore[import-untyped]
    from onnx import helper

    domains = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=domains)
    model.ir_version = 8
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
