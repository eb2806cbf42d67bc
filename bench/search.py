"""Knowledge-base speed: ingestion paragraphs/s, and search latency at 10k and 100k chunks,
on SQLite and on PostgreSQL (pgvector), through Parley's own store, worker and searcher.

    python bench/search.py [--data ../shared/bench-data] [--sizes 10000,100000] [--ingest 1000] [--rounds 3]

Ingestion runs the real pipeline (chunking on create, the background worker embedding with the
packaged model, already loaded as in a running server) on CMRC passages cut to ~500
characters. The large indexes reuse the vectors of real passages with a little noise
(embedding 100k paragraphs would take this machine 20 minutes), inserted as completed chunks;
queries are real CMRC questions. Every figure is the median of ``--rounds`` rounds (the search
kinds take turns within a round), with the CPU time of Parley's process beside it: on a shared
machine wall times move with the load, CPU times much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The public sets live beside the repository, or beside its parent folder from a worktree.
PLACES = (ROOT.parent / "shared" / "bench-data", ROOT.parents[1] / "shared" / "bench-data")
DATA = next((p for p in PLACES if p.exists()), PLACES[0])

import scratch  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from parley.config import Settings  # noqa: E402
from parley.memory.jobs import EmbeddingWorker  # noqa: E402
from parley.memory.search import Searcher  # noqa: E402
from parley.memory.store import put_content  # noqa: E402
from parley.memory.terms import terms  # noqa: E402
from parley.providers.routing import Router  # noqa: E402
from parley.storage import db  # noqa: E402
from parley.storage.models import Integration, Memory, MemoryChunk, MemoryContent, now  # noqa: E402


def paragraphs(data: Path) -> tuple[list[str], list[str]]:
    articles = json.loads((data / "cmrc2018" / "cmrc2018_dev.json").read_text(encoding="utf-8"))["data"]
    contexts = [p["context"] for a in articles for p in a["paragraphs"]]
    questions = [qa["question"] for a in articles for p in a["paragraphs"] for qa in p["qas"]]
    cut = [c[i : i + 500] for c in contexts for i in range(0, len(c), 500) if len(c[i : i + 500]) > 100]
    return cut, questions


async def make_memory(sessions, name: str) -> Memory:  # noqa: ANN001
    async with sessions() as s:
        app = Integration(id=str(uuid.uuid4()), name="bench", hash_token_sealed="-", admin_token_sealed="-")
        s.add(app)
        memory = Memory(
            integration_id=app.id,
            name=name,
            embedding_model="use-multilingual-v3",
            max_tokens_per_chunk=1024,
            overlap_tokens=0,
        )
        s.add(memory)
        await s.commit()
        return memory


async def ingest_rate(sessions, router: Router, texts: list[str], name: str) -> tuple[float, float]:  # noqa: ANN001
    """Paragraphs per second into a fresh memory, and process CPU milliseconds per paragraph."""
    memory = await make_memory(sessions, name)
    worker = EmbeddingWorker(sessions, router)
    started, cpu = time.perf_counter(), time.process_time()
    async with sessions() as s:
        for i, text in enumerate(texts):
            await put_content(
                s, memory, {"content": text, "content_type": "text", "key": f"p{i}", "attrs": None, "status": "enabled"}
            )
    await worker.run_until_idle()
    return len(texts) / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / len(texts)


async def bulk_load(sessions, memory: Memory, vectors: np.ndarray, texts: list[str], bags: list[str], size: int):  # noqa: ANN001, ANN201
    rng = np.random.default_rng(size)
    stamp = now()
    batch = 5000
    for start in range(0, size, batch):
        contents, chunks = [], []
        for i in range(start, min(start + batch, size)):
            j = i % len(vectors)
            v = vectors[j] + rng.normal(0, 0.02, vectors.shape[1]).astype(np.float32)
            cid = str(uuid.uuid4())
            contents.append(
                {
                    "id": cid,
                    "memory_id": memory.id,
                    "content": texts[j],
                    "content_type": "text",
                    "key": f"k{i}",
                    "attrs": {"n": i % 100, "group": "even" if i % 2 == 0 else "odd"},
                    "status": "enabled",
                    "version": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            chunks.append(
                {
                    "id": str(uuid.uuid4()),
                    "memory_id": memory.id,
                    "content_id": cid,
                    "version": 1,
                    "chunk_index": 0,
                    "content": texts[j],
                    "token_count": 300,
                    "terms": bags[j],
                    "embedding": (v / np.linalg.norm(v)).tolist(),
                    "dims": len(v),
                    "active": True,
                    "embedding_status": "completed",
                    "attempts": 1,
                    "not_before": stamp,
                    "created_at": stamp,
                }
            )
        async with sessions() as s:
            await s.execute(insert(MemoryContent), contents)
            await s.execute(insert(MemoryChunk), chunks)
            await s.commit()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def latency(
    sessions,  # noqa: ANN001
    searcher: Searcher,
    memory: Memory,
    questions: list[str],
    mode: str,
    content_filter: dict | None = None,
) -> tuple[list[float], list[float]]:
    """Wall and process CPU milliseconds of each search (the CPU of Parley's process and its
    threads: it hardly moves with the machine's load; PostgreSQL's own CPU is not in it)."""
    walls, cpus = [], []
    async with sessions() as s:  # warm: loads the in-process index once
        await searcher.search(s, memory, questions[0], limit=10, min_similarity=0.0, mode=mode)
    for q in questions:
        async with sessions() as s:
            t0, c0 = time.perf_counter(), time.process_time()
            await searcher.search(s, memory, q, limit=10, min_similarity=0.0, mode=mode, content_filter=content_filter)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
    return walls, cpus


async def run_backend(name: str, url: str, args: argparse.Namespace, texts: list[str], questions: list[str]) -> None:
    await db.migrate(url)
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    router = Router(Settings(database_url=url))
    searcher = Searcher(router, postgres=name == "postgresql")
    # A running server has its model and word segmenter loaded: so does the ingestion measured.
    await router.embed("use-multilingual-v3", ["warm"])
    terms("warm", document=True)
    runs = [await ingest_rate(sessions, router, texts[: args.ingest], f"ingest{i}") for i in range(args.rounds)]
    rate = statistics.median(r for r, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(
        f"{name}: ingestion {rate:.0f} paragraphs/s, {cpu:.1f} ms of CPU each ({args.ingest} paragraphs of "
        f"~500 characters, chunked, embedded, indexed; median of {args.rounds})",
        flush=True,
    )
    pool = texts[:2000]
    vectors = np.asarray(router.local_embedder.embed_sync(pool), dtype=np.float32)
    bags = [" ".join(terms(t, document=True)) for t in pool]
    sample = questions[:: max(1, len(questions) // args.queries)][: args.queries]
    for size in args.sizes:
        memory = await make_memory(sessions, f"size{size}")
        t0 = time.perf_counter()
        await bulk_load(sessions, memory, vectors, pool, bags, size)
        if name == "postgresql":  # what autovacuum would do soon after a bulk load: fresh planner statistics
            async with engine.connect() as conn:
                await conn.execute(text("ANALYZE memory_chunks"))
                await conn.execute(text("ANALYZE memory_contents"))
                await conn.commit()
        load = time.perf_counter() - t0
        kinds = (("dense", None), ("hybrid", None), ("dense", {"attrs": {"group": "even", "n": {"$lt": 10}}}))
        rounds: list[list[tuple[list[float], list[float]]]] = [[] for _ in kinds]
        for _ in range(args.rounds):  # the kinds take turns, so a burst of load hits them alike
            for i, (mode, flt) in enumerate(kinds):
                rounds[i].append(await latency(sessions, searcher, memory, sample, mode, flt))
        cells = []
        for (mode, flt), runs in zip(kinds, rounds, strict=True):
            p50 = statistics.median(statistics.median(w) for w, _ in runs)
            p99 = statistics.median(pct(w, 99) for w, _ in runs)
            cpu = statistics.median(statistics.median(c) for _, c in runs)
            label = mode + (" +filter" if flt else "")
            cells.append(f"{label} p50 {p50:.1f} ms p99 {p99:.1f} ms (CPU {cpu:.1f} ms)")
        print(f"{name}: {size:>6} chunks (loaded in {load:.0f}s): " + "; ".join(cells), flush=True)
    await router.aclose()
    await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--ingest", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--rounds", type=int, default=3, help="latency: the median over this many rounds")
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    texts, questions = paragraphs(Path(args.data))
    work = scratch.folder("parley-search-bench-")
    for backend in args.backends.split(","):
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{work}/bench.db"
        else:
            import pgserver

            server = pgserver.get_server(work / "pg", cleanup_mode="stop")
            base, _, query = server.get_uri().partition("?")
            url = base.replace("postgresql://", "postgresql+asyncpg://", 1) + (f"?{query}" if query else "")
        asyncio.run(run_backend(backend, url, args, texts, questions))


if __name__ == "__main__":
    main()
