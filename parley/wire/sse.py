"""Server-sent events out of the bytes of a stream, as they arrive.

One pass over whatever the connection has buffered: a read that brought several events yields
them all at once, instead of one awaited line read per field of each event (an Anthropic event
is three lines: ``event:``, ``data:`` and the blank one that ends it).
"""

from __future__ import annotations

Event = tuple[str, bytes]  # (event name or "", data)


def _event(block: bytes) -> Event | None:
    """One event's lines as (name, data); comments, ids and retry hints are skipped.

    Lines outside SSE's framing are kept as the event's data when it has no ``data:`` lines:
    Gemini sends an error that happens mid-stream as bare JSON lines."""
    event = ""
    data: list[bytes] = []
    bare: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value[:1] == b" " else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
        elif line and not line.startswith((b":", b"id:", b"retry:")):
            bare.append(line)
    if data or bare:
        return event, b"\n".join(data or bare)
    return None


class EventParser:
    """Feed it the stream's bytes as they come; it returns the events they complete."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # the most an unfinished event may hold before it is refused
        self._rest = b""

    def feed(self, data: bytes) -> list[Event]:
        buf = self._rest + data if self._rest else data
        held = b""
        if b"\r" in buf:
            # SSE lines may end in CRLF, LF or CR: made LF. A CR at the very end waits for the
            # next read, where its LF may be.
            if buf.endswith(b"\r"):
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = buf.split(b"\n\n")
        rest = blocks.pop()
        if len(rest) > self.limit:
            raise ValueError(f"a server-sent event over {self.limit} bytes")
        self._rest = rest + held
        out: list[Event] = []
        for block in blocks:
            if (event := _event(block)) is not None:
                out.append(event)
        return out

    def end(self) -> list[Event]:
        """The event the stream's last bytes still hold (a body may end without the blank line)."""
        rest, self._rest = self._rest.replace(b"\r", b"\n"), b""
        event = _event(rest)
        return [event] if event is not None else []
