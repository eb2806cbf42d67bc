"""A Gemini API test double that speaks real HTTP, as generativelanguage.googleapis.com does.

``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` (each
``GenerateContentResponse`` a ``data:`` event, CRLF-separated) and ``:batchEmbedContents``,
with the key in ``x-goog-api-key``. Errors use Google's ``{"error": {"code", "message",
"status", "details"}}``; an error in the middle of a stream comes as bare JSON lines, as the
google-genai SDK expects. Behaviour is chosen by the model in the URL; every request (model,
method, body, headers) is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "AIza-test-key"
SIGNATURE = "CiQB0e2Kb6mN3pQ7StbU5b1b9xY2zA4bcLp0TwfEHSIbSCNqSuKUzpzv"  # opaque base64, as Gemini sends
CALLS = [("get_weather", {"location": "旧金山", "unit": "celsius"}), ("get_time", {"timezone": "America/Los_Angeles"})]
ERRORS: dict[str, tuple[int, str, str, list[dict[str, Any]]]] = {
    "gemini-400": (400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified", []),
    "gemini-badkey": (
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    ),
    "gemini-403": (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", []),
    "gemini-404": (404, "NOT_FOUND", "models/gemini-404 is not found for API version v1beta", []),
    "gemini-429": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan.",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36.5s"}],
    ),
    "gemini-500": (500, "INTERNAL", "An internal error has occurred.", []),
    "gemini-503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", []),
}
FINISH = {"gemini-max-tokens": "MAX_TOKENS", "gemini-safety": "SAFETY", "gemini-recitation": "RECITATION"}


# A 1x1 PNG, served under /files/ for image URLs (not part of Gemini's API).
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201ac2b6b6f0000000049454e44ae426082"
)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # {"model", "method", "query", "body", "headers"}
        self.stream_ends: list[dict[str, Any]] = []
        self.file_gets: list[str] = []

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _error(status: int, kind: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": status, "message": message, "status": kind}
    if details:
        err["details"] = details
    return {"error": err}


def _said(body: dict[str, Any]) -> tuple[str, bool]:
    """What the last user turn says, and whether it answers function calls."""
    last = (body.get("contents") or [{}])[-1]
    out, answered = [], False
    for part in last.get("parts") or ():
        if "text" in part:
            out.append(part["text"])
        elif "functionResponse" in part:
            answered = True
            fr = part["functionResponse"]
            out.append(f"{fr['name']}={orjson.dumps(fr['response']).decode()}")
        elif "inlineData" in part:
            out.append(f"[inline {part['inlineData']['mimeType']} {len(part['inlineData']['data'])}]")
    return " ".join(out), answered


def _usage(model: str, output: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": 12, "candidatesTokenCount": output, "totalTokenCount": 12 + output}
    if model == "gemini-thinking":
        usage.update(cachedContentTokenCount=8, thoughtsTokenCount=9, totalTokenCount=12 + output + 9)
    return usage


def _chunks(model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The reply as the streamed responses; a whole response is their parts together."""
    said, answered = _said(body)
    base = {"modelVersion": model, "responseId": "mAitaPWRD5jNz7IP2b2N0QQ"}
    if model == "gemini-blocked":
        return [
            {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
                **base,
            }
        ]
    parts_list: list[list[dict[str, Any]]] = []
    if model == "gemini-tools" and not answered:
        parts_list.append([{"text": "Let me check both."}])
        first, second = CALLS
        parts_list.append([{"functionCall": {"name": first[0], "args": first[1]}, "thoughtSignature": SIGNATURE}])
        parts_list.append([{"functionCall": {"name": second[0], "args": second[1]}}])
    else:
        if model == "gemini-thinking":
            parts_list.append([{"text": "The user wants an echo.", "thought": True}])
            parts_list.append([{"text": " Easy.", "thought": True}])
        text = ("results: " if answered else "echo: ") + said
        parts_list += [[{"text": text[i : i + 6]}] for i in range(0, len(text), 6)]
    out = []
    for n, parts in enumerate(parts_list, 1):
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if n == len(parts_list):
            candidate["finishReason"] = FINISH.get(model, "STOP")
        out.append({"candidates": [candidate], "usageMetadata": _usage(model, n * 3), **base})
    return out


def _whole(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    if "candidates" not in chunks[-1]:
        return chunks[-1]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    merged: list[dict[str, Any]] = []
    for p in parts:  # the whole answer joins adjacent text parts, as Gemini's does
        if merged and "text" in p and "text" in merged[-1] and p.get("thought") == merged[-1].get("thought"):
            merged[-1] = {**merged[-1], "text": merged[-1]["text"] + p["text"]}
        else:
            merged.append(p)
    last = chunks[-1]
    candidate = {**last["candidates"][0], "content": {"parts": merged, "role": "model"}}
    return {**last, "candidates": [candidate]}


async def _events(rec: Recorder, model: str, chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    end: dict[str, Any] = {"model": model, "reason": "finished"}
    try:
        if model == "gemini-endless":
            for n in range(100_000):
                await asyncio.sleep(0.05)
                part = {"text": f"{n} "}
                yield b"data: " + orjson.dumps({"candidates": [{"content": {"parts": [part], "role": "model"}}]})
                yield b"\r\n\r\n"
        for n, chunk in enumerate(chunks):
            yield b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"
            if model == "gemini-midstream" and n == 0:
                # Google sends an error after the stream has begun as bare (pretty-printed) JSON.
                yield orjson.dumps(
                    _error(500, "INTERNAL", "An internal error has occurred."), option=orjson.OPT_INDENT_2
                )
                return
    except asyncio.CancelledError:
        end["reason"] = "cancelled"
        raise
    finally:
        rec.stream_ends.append(end)


def _embed(body: dict[str, Any], model: str) -> Response:
    if model == "gemini-embed-fail":
        return Response(
            orjson.dumps(_error(500, "INTERNAL", "embedding backend down")), 500, media_type="application/json"
        )
    vectors = []
    for req in body["requests"]:
        if req.get("model") != f"models/{model}":
            return Response(
                orjson.dumps(_error(400, "INVALID_ARGUMENT", "model mismatch")), 400, media_type="application/json"
            )
        text = " ".join(p["text"] for p in req["content"]["parts"])
        vectors.append({"values": [float(len(text)), 1.0, 0.0]})
    return Response(orjson.dumps({"embeddings": vectors}), media_type="application/json")


def build(rec: Recorder) -> Starlette:
    async def models(request: Request) -> Response:
        model, _, method = request.path_params["rest"].partition(":")
        body = orjson.loads(await request.body())
        rec.requests.append(
            {
                "model": model,
                "method": method,
                "query": dict(request.query_params),
                "body": body,
                "headers": dict(request.headers),
            }
        )
        if request.headers.get("x-goog-api-key") != API_KEY:
            status, kind, message, details = ERRORS["gemini-badkey"]
            return Response(orjson.dumps(_error(status, kind, message, details)), status, media_type="application/json")
        if method == "batchEmbedContents":
            return _embed(body, model)
        if model in ERRORS:
            status, kind, message, details = ERRORS[model]
            return Response(orjson.dumps(_error(status, kind, message, details)), status, media_type="application/json")
        if model == "gemini-hang":
            await asyncio.sleep(3600)
        chunks = _chunks(model, body)
        if method == "generateContent":
            return Response(orjson.dumps(_whole(chunks)), media_type="application/json")
        if method == "streamGenerateContent" and request.query_params.get("alt") == "sse":
            return StreamingResponse(_events(rec, model, chunks), media_type="text/event-stream")
        return Response(
            orjson.dumps(_error(404, "NOT_FOUND", f"unknown method {method}")), 404, media_type="application/json"
        )

    async def files(request: Request) -> Response:
        name = request.path_params["name"]
        rec.file_gets.append(name)
        if name == "pixel.png":
            return Response(PIXEL, media_type="image/png")
        if name == "pixel-untyped":
            return Response(PIXEL, media_type="application/octet-stream")
        return Response(b"<html>not an image</html>", media_type="text/html")

    return Starlette(
        routes=[
            Route("/v1beta/models/{rest:path}", models, methods=["POST"]),
            Route("/files/{name}", files, methods=["GET"]),
        ]
    )
