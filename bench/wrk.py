"""Fixed-concurrency runs with wrk (C, one thread): it costs far less CPU than any Python client,
which matters when the client, the server under test and the upstream share two cores.

Latency here is each whole response (for a stream: until its last chunk).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from loadgen import Stats

# wrk's done() hook prints the exact percentiles (microseconds) and error counts on one line.
_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %f %f %f %f %f\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float) -> Stats:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in {"content-type": "application/json", **headers}.items())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT.format(body=body.decode(), headers=lines))
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script),
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK "))
    requests, duration_us, p50, p99, errors = (float(x) for x in line.split()[1:])
    return Stats(p50 / 1000, p99 / 1000, requests / (duration_us / 1e6), int(requests), int(errors))
