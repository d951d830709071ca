"""Google Gemini's generateContent (`POST {base}/models/{model}:generateContent`, `x-goog-api-key`),
and streamGenerateContent with `alt=sse` when streamed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import ErrorKind, LLMError
from .._types import Finish, HttpRequest, Reply, Request
from ._common import classify, decode_json, one_line, provider_message, sse_data

__all__ = ["GeminiGenerate"]

_FINISH: dict[str, Finish] = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
                              "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
                              "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
                              "IMAGE_SAFETY": "content_filter"}
_CODES: dict[str, ErrorKind] = {"UNAUTHENTICATED": "auth", "PERMISSION_DENIED": "auth",
                                "DEADLINE_EXCEEDED": "timeout", "UNAVAILABLE": "server_error",
                                "INTERNAL": "server_error", "API_KEY_INVALID": "auth"}
_SECONDS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)s$")


class _Part(msgspec.Struct):
    text: str | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0


class _Feedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Response(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = []
    usage_metadata: _Usage | None = None
    model_version: str | None = None
    prompt_feedback: _Feedback | None = None


_response = msgspec.json.Decoder(_Response)


class GeminiGenerate:
    name = "gemini"

    def request(self, base_url: str, key: str | None, req: Request) -> HttpRequest:
        body: dict[str, Any] = {"contents": [{"role": "model" if m.role == "assistant" else "user",
                                              "parts": [{"text": m.content}]} for m in req.turns]}
        if req.system is not None:
            body["systemInstruction"] = {"parts": [{"text": req.system}]}
        config: dict[str, Any] = {}
        if req.max_tokens is not None:
            config["maxOutputTokens"] = req.max_tokens
        if req.temperature is not None:
            config["temperature"] = req.temperature
        if config:
            body["generationConfig"] = config
        headers = {"Content-Type": "application/json"}
        if key:
            headers["x-goog-api-key"] = key
        method = "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        return HttpRequest(f"{base_url}/models/{req.model}:{method}", headers, msgspec.json.encode(body))

    def reply(self, content: bytes, where: str, stream: bool) -> Reply:
        chunks = sse_data(content) if stream else [content]
        if stream and not chunks:
            raise LLMError("server_error", f"{where} sent an empty stream")
        parts: list[str] = []
        finish = model = None
        usage: _Usage | None = None
        for data in chunks:
            try:
                response = _response.decode(data)
            except msgspec.DecodeError as exc:
                raise LLMError("server_error", f"{where} sent a malformed response: {one_line(str(exc))}") from exc
            if not response.candidates and response.prompt_feedback and response.prompt_feedback.block_reason:
                raise LLMError("content_filtered", f"{where} blocked the prompt "
                               f"(promptFeedback.blockReason {response.prompt_feedback.block_reason})")
            model = response.model_version or model
            usage = response.usage_metadata or usage
            for candidate in response.candidates[:1]:
                if candidate.content is not None:
                    parts.extend(p.text for p in candidate.content.parts if p.text)
                finish = candidate.finish_reason or finish
        if finish is None:
            raise LLMError("server_error", f"{where} sent a malformed response: no candidate with a finishReason")
        return Reply(text="".join(parts), finish=_FINISH.get(finish, "other"),
                     tokens_in=usage.prompt_token_count if usage else 0,
                     tokens_out=usage.candidates_token_count if usage else 0, model=model)

    def error(self, status: int, reason: str | None, headers: Mapping[str, str], content: bytes,
              where: str) -> LLMError:
        body = decode_json(content)
        error = body.get("error") if isinstance(body, dict) else None
        code = None
        delay = None
        if isinstance(error, dict):
            code = error.get("status")
            for detail in error.get("details") or ():
                if not isinstance(detail, dict):
                    continue
                if detail.get("reason") == "API_KEY_INVALID":
                    code = "API_KEY_INVALID"
                match = _SECONDS.match(str(detail.get("retryDelay", "")))
                if match:
                    delay = match.group(1)
        if delay is not None and "retry-after" not in headers:
            headers = {**headers, "retry-after": delay}  # RetryInfo says what Retry-After would
        return classify(status, provider_message(content, reason), headers, where, _CODES,
                        code if isinstance(code, str) else None)
