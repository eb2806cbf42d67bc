"""Memory filter cost: Parley's compiler against the naive forms it replaced, in the same run.

    python bench/filters.py [--rows 20000] [--pg postgresql://…]

On a table of memory contents (SQLite, and PostgreSQL when ``--pg`` names a server), it times
``$in`` with 10 / 100 / 1,000 values compiled as one bound array (Parley) and as one comparison
per value (the naive form), and ``$regex`` ``(.*a){20}`` over 60 attributes of 30,000
characters in RE2 without captures (Parley, SQLite) and with them. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import re2  # noqa: E402
from sqlalchemy import false, func, insert, or_, select  # noqa: E402

from parley.memory import filters  # noqa: E402
from parley.storage import db  # noqa: E402
from parley.storage.models import Integration, Memory, MemoryContent  # noqa: E402


def naive_in(d: filters.Dialect, key: str, values: list[Any]) -> Any:
    """What $in compiled to before: one equality per value, OR-ed."""
    return filters._definite(or_(false(), *(filters._equals(d, key, v) for v in values)))


async def timed(run: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def fill(engine: Any, rows: int) -> str:
    sessions = db.sessionmaker(engine)
    async with sessions() as s:
        app = Integration(id=str(uuid.uuid4()), name="bench", hash_token_sealed="-", admin_token_sealed="-")
        memory = Memory(integration_id=app.id, name="bench", embedding_model="bench")
        s.add_all([app, memory])
        await s.flush()
        await s.execute(
            insert(MemoryContent),
            [{"memory_id": memory.id, "content": f"c{i}", "attrs": {"n": i, "s": f"v{i}"}} for i in range(rows)],
        )
        long = ("lorem ipsum dolor sit amet " * 1200)[:30_000]
        await s.execute(
            insert(MemoryContent), [{"memory_id": memory.id, "content": "long", "attrs": {"long": long}}] * 60
        )
        await s.commit()
        return memory.id


async def bench(url: str, rows: int) -> None:
    await db.migrate(url)
    engine = db.create_engine(url)
    memory_id = await fill(engine, rows)
    d = filters.Dialect(engine.dialect.name, MemoryContent.attrs)
    sessions = db.sessionmaker(engine)
    print(f"\n{engine.dialect.name}: {rows} contents")

    async def count(condition: Any) -> None:
        async with sessions() as s:
            await s.scalar(select(func.count()).where(MemoryContent.memory_id == memory_id, condition))

    for k in (10, 100, 1000):
        values = list(range(0, 2 * k, 2))
        bound = filters.compile_attrs({"n": {"$in": values}}, d)
        fast = await timed(lambda bound=bound: count(bound))
        try:
            slow = await timed(lambda values=values: count(naive_in(d, "n", values)), repeat=1 if k == 1000 else 3)
        except Exception as exc:  # noqa: BLE001 - the naive form's own failure is the finding
            print(f"  $in {k:>5} values: bound array {fast:8.1f} ms, one comparison per value fails: {exc.orig}")
            continue
        ratio = f"{slow / fast:.0f}x"
        print(f"  $in {k:>5} values: bound array {fast:8.1f} ms, one comparison per value {slow:9.1f} ms ({ratio})")
    if engine.dialect.name == "sqlite":
        pattern = "(.*a){20}"
        text = ("lorem ipsum dolor sit amet " * 1200)[:30_000]
        capturing = re2.compile(pattern)
        plain = db.compiled_regex(pattern)

        async def run(regex: Any) -> None:
            for _ in range(60):  # what the REGEXP function does per row
                regex.search(text)

        with_captures = await timed(lambda: run(capturing), repeat=3)
        without = await timed(lambda: run(plain))
        print(
            f"  $regex {pattern} over 60 x 30k chars: without captures {without:8.1f} ms, "
            f"with captures {with_captures:8.1f} ms ({with_captures / without:.0f}x)"
        )
        regex_filter = filters.compile_attrs({"long": {"$regex": pattern}}, d)
        print(f"  the whole filtered query: {await timed(lambda: count(regex_filter)):8.1f} ms")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--pg", help="a PostgreSQL URL (postgresql+asyncpg://…) to run on as well")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench(f"sqlite+aiosqlite:///{tmp}/bench.db", args.rows))
    if args.pg:
        asyncio.run(bench(args.pg, args.rows))


if __name__ == "__main__":
    main()
