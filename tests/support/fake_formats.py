"""The wire formats the fake upstreams speak, one small class each, from
/work/shared/reference/provider-wire-formats.md: route, auth, request validation, success body
and the documented error envelope. fake_upstreams.py serves them all from one server.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

DEFAULT_DIM = 8


def vector_for(item: str | list[int], dim: int) -> np.ndarray:
    """The fake's deterministic unit vector for one input: seeded by a hash of the input, so a
    test can tell which vector belongs to which input."""
    seed = int.from_bytes(hashlib.sha256(orjson.dumps(item)).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def tokens_for(item: str | list[int]) -> int:
    """The fake's token count for one input: words for text, ids for token arrays."""
    return max(1, len(item.split()) if isinstance(item, str) else len(item))


def b64_vector(v: np.ndarray) -> str:
    return base64.b64encode(v.astype("<f4").tobytes()).decode()


@dataclass
class Parsed:
    """A valid request as the fake understood it."""

    inputs: list[Any]
    dim: int | None
    base64: bool = False
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reject:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class Wire:
    """One upstream's wire format. Subclasses set the route and override what differs."""

    name = ""
    route = r""
    auth_header = "authorization"
    auth_required = True
    max_inputs = 10_000

    def authorized(self, headers: Mapping[str, str], key: str) -> bool:
        got = headers.get(self.auth_header)
        if got is None:
            return not self.auth_required
        want = key if self.auth_header != "authorization" else f"Bearer {key}"
        return got == want

    def envelope(self, status: int, message: str, code: str | None = None) -> Any:
        return {"error": {"message": message, "type": code, "param": None, "code": code}}

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        # Echo what was sent, as OpenAI does ("Incorrect API key provided: ..."), so the tests
        # prove the adapter redacts it.
        sent = headers.get(self.auth_header, "")
        return Reject(401, self.envelope(401, f"Incorrect API key provided: {sent}",
                                         "invalid_api_key"))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        if not isinstance(body, dict) or "model" not in body or not body.get("input"):
            return Reject(400, self.envelope(400, "'input' and 'model' are required",
                                             "invalid_request_error"))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if len(inputs) > self.max_inputs:
            return Reject(400, self.envelope(
                400, f"Too many inputs: at most {self.max_inputs} inputs per request",
                "invalid_request_error"))
        dim = body.get("dimensions", body.get("output_dimension"))
        return Parsed(inputs, dim, body.get("encoding_format") == "base64", body["model"])

    def success(self, req: Parsed, vecs: np.ndarray, tokens: int, flaws: set[str]) -> Any:
        items = [{"object": "embedding", "index": i,
                  "embedding": b64_vector(v) if req.base64 else v.tolist()}
                 for i, v in enumerate(vecs)]
        if "bad_base64" in flaws:
            items[0]["embedding"] = "not*base64"
        if "dup_index" in flaws:
            for item in items:
                item["index"] = 0
        if "shuffle" in flaws:
            items.reverse()
        if "short" in flaws:
            items.pop()
        body: dict[str, Any] = {"object": "list", "model": req.model, "data": items}
        if "no_usage" not in flaws:
            body["usage"] = self.usage(tokens)
        return body

    def usage(self, tokens: int) -> Any:
        return {"prompt_tokens": tokens, "total_tokens": tokens}

    # -- scripted errors: (status, body, headers) for one canonical situation ------------------
    def rate_limited(self, retry: float | None) -> Reject:
        headers = {} if retry is None else {"retry-after": f"{retry:g}",
                                            "retry-after-ms": f"{retry * 1000:g}"}
        return Reject(429, self.envelope(429, "Rate limit reached for requests",
                                         "rate_limit_exceeded"), headers)

    def too_large(self) -> Reject:
        return Reject(400, self.envelope(
            400, "Requested 400000 tokens, max 300000 tokens per request",
            "max_tokens_per_request"))

    def overloaded(self) -> Reject:
        return Reject(529, self.envelope(529, "Overloaded", "overloaded_error"))

    def plain(self, status: int) -> Reject:
        return Reject(status, self.envelope(status, f"The server had an error (HTTP {status})",
                                            "server_error"))


class OpenAIWire(Wire):
    name = "openai"
    route = r"/v1/embeddings"
    max_inputs = 2048


class AzureWire(Wire):
    name = "azure"
    route = r"/openai/deployments/(?P<deployment>[^/]+)/embeddings"
    auth_header = "api-key"
    max_inputs = 2048

    def envelope(self, status: int, message: str, code: str | None = None) -> Any:
        return {"error": {"code": code or str(status), "message": message}}

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(401, self.envelope(401, "Access denied due to invalid subscription key or "
                                              "wrong API endpoint.", "401"))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        if not query.get("api-version"):
            return Reject(404, self.envelope(404, "Resource not found", "404"))
        parsed = super().parse(body, match, query)
        if isinstance(parsed, Parsed):
            parsed.extra["deployment"] = match.group("deployment")
        return parsed

    def rate_limited(self, retry: float | None) -> Reject:
        headers = {} if retry is None else {"retry-after": f"{retry:g}",
                                            "retry-after-ms": f"{retry * 1000:g}"}
        return Reject(429, self.envelope(
            429, "Requests to the Embeddings_Create Operation under Azure OpenAI API version "
                 "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing "
                 f"tier. Please retry after {retry or 60:g} seconds.", "429"), headers)


class VoyageWire(Wire):
    name = "voyage"
    route = r"/v1/embeddings"
    max_inputs = 1000

    def envelope(self, status: int, message: str, code: str | None = None) -> Any:
        return {"detail": message}

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(401, self.envelope(401, "Provided API key is invalid."))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        if isinstance(body, dict) and body.get("encoding_format") not in (None, "base64"):
            return Reject(400, self.envelope(400, "encoding_format must be null or 'base64'"))
        if isinstance(body, dict) and body.get("input_type") not in (None, "query", "document"):
            return Reject(400, self.envelope(400, "input_type must be query, document or null"))
        if isinstance(body, dict) and len(body.get("input") or []) > self.max_inputs:
            return Reject(400, self.envelope(
                400, f"The batch size limit is {self.max_inputs}. Your batch size is "
                     f"{len(body['input'])}."))
        return super().parse(body, match, query)

    def usage(self, tokens: int) -> Any:
        return {"total_tokens": tokens}

    def rate_limited(self, retry: float | None) -> Reject:
        return Reject(429, self.envelope(429, "You have exceeded your rate limit."))

    def too_large(self) -> Reject:
        return Reject(400, self.envelope(400, "Request to model 'voyage-3.5' failed. The max "
                                              "allowed tokens per submitted batch is 320000."))
