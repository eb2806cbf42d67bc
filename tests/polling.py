"""Waiting for a condition in tests: poll it with a generous deadline, never sleep and hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, seconds: float = 30.0, seen: Callable[[], object] | None = None) -> T:
    """Poll until ``check()`` returns something truthy; its value is returned. ``seen``, when
    given, tells what the last look found, for the message of a test that timed out."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"; last seen: {seen()!r}" if seen else ""))
        time.sleep(0.05)


async def until(
    check: Callable[[], object],
    what: str,
    seconds: float = 30.0,
    step: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """In a test's event loop: yield to it until ``check()`` is truthy. ``step``, when given,
    is awaited between looks: what the test does to make the condition come true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if step is not None:
            await step()
        await asyncio.sleep(0.01)


async def until_equal(read: Callable[[], Awaitable[T]], expected: T, seconds: float = 30.0) -> None:
    """In a test's event loop: await ``read()`` until it gives ``expected``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (value := await read()) != expected:
        if loop.time() > deadline:
            raise AssertionError(f"still {value!r}, not {expected!r}")
        await asyncio.sleep(0.01)
