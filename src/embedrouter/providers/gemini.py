"""Google's Gemini API: ``POST {base_url}/models/{m}:batchEmbedContents`` with ``x-goog-api-key``
(provider-wire-formats.md section 7; ``base_url`` ends in ``/v1beta``).

Each input is one sub-request ``{model: "models/{m}", content: {parts: [{text}]}, taskType,
outputDimensionality}``; the reply's ``embeddings[i].values`` follow the request order. The reply
carries no usage, so ``prompt_tokens`` is None and the router estimates.

Errors come in Google's RPC envelope, read by ``google_failure`` (shared with vertex.py): the
``status`` string decides the kind, and a 429 ``RESOURCE_EXHAUSTED`` carries its back-off hint in
``error.details[].retryDelay`` (a duration such as ``"12s"``), not in a header [U].
Options: ``task_types`` (intent -> taskType, over the defaults below).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from embedrouter.providers.upstream import (
    AttemptFailure,
    HttpReply,
    JsonAdapter,
    Kind,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    checked,
    dig,
    error_message,
    failure,
    float_rows,
    intent,
    invalid_reply,
    kind_for_status,
    load_json,
    refine_kind,
    texts,
)

TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT",
              "similarity": "SEMANTIC_SIMILARITY", "classification": "CLASSIFICATION",
              "clustering": "CLUSTERING"}

# google.rpc.Code names -> our kinds; a status not listed falls back to the HTTP status.
RPC_KINDS: dict[str, Kind] = {
    "RESOURCE_EXHAUSTED": "rate_limited", "UNAUTHENTICATED": "auth",
    "PERMISSION_DENIED": "auth", "INVALID_ARGUMENT": "bad_request",
    "FAILED_PRECONDITION": "bad_request", "OUT_OF_RANGE": "bad_request",
    "UNAVAILABLE": "unavailable", "INTERNAL": "unavailable", "DEADLINE_EXCEEDED": "timeout",
}
# Google answers a bad API key with 400 INVALID_ARGUMENT and this ErrorInfo reason [U].
AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


def retry_delay(details: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail's ``retryDelay`` ("12s", "0.5s")."""
    if not isinstance(details, list):
        return None
    for detail in details[:20]:  # bounded: the list comes from the upstream
        raw = detail.get("retryDelay") if isinstance(detail, dict) else None
        match = _DURATION.match(raw) if isinstance(raw, str) else None
        if match and float(match.group(1)) > 0:
            return float(match.group(1))
    return None


def google_failure(config: ProviderConfig, reply: HttpReply, body: Any) -> AttemptFailure:
    """An ``AttemptFailure`` from Google's ``{"error": {code, message, status, details}}``."""
    status = dig(body, "error", "status")
    details = dig(body, "error", "details")
    kind = RPC_KINDS.get(status, kind_for_status(reply.status)) if isinstance(status, str) \
        else kind_for_status(reply.status)
    reasons = {d.get("reason") for d in details[:20] if isinstance(d, dict)} \
        if isinstance(details, list) else set()
    if reasons & AUTH_REASONS:
        kind = "auth"
    # The RPC status outranks the HTTP status; the body's own words still refine it (an
    # "overloaded" UNAVAILABLE, a too-many-requests INVALID_ARGUMENT).
    kind = refine_kind(kind, error_message(body)[0], status if isinstance(status, str) else None)
    return failure(config, reply, body, kind=kind,
                   code=status if isinstance(status, str) else None, hint=retry_delay(details))


def model_name(upstream_model: str) -> str:
    """The bare model id: "gemini-embedding-001" whether configured with "models/" or not."""
    return upstream_model.removeprefix("models/")


class GeminiAdapter(JsonAdapter):
    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        self._tasks = {**TASK_TYPES, **dict(config.options.get("task_types", {}))}

    def _auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"x-goog-api-key": key} if key else {}

    def url(self, call: UpstreamCall) -> str:
        return f"{self._root}/models/{quote(model_name(call.upstream_model), safe='')}" \
               ":batchEmbedContents"

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        model = f"models/{model_name(call.upstream_model)}"
        wanted = intent(call.input_type)
        # Unknown intents go upper-cased, so Gemini's other task names (question_answering,
        # code_retrieval_query, ...) work as the caller wrote them.
        task = None if wanted is None else self._tasks.get(wanted, wanted.upper())
        requests = []
        for text in texts(self.config, call):
            item: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
            if task is not None:
                item["taskType"] = task
            if call.dimensions is not None:
                item["outputDimensionality"] = call.dimensions
            requests.append(item)
        return {"requests": requests}

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None
              ) -> UpstreamReply:
        body = load_json(reply)
        if not 200 <= reply.status < 300:
            raise google_failure(self.config, reply, body)
        items = dig(body, "embeddings")
        if not isinstance(items, list):
            raise invalid_reply(self.config, "no `embeddings` array", reply)
        if len(items) != sent:
            raise invalid_reply(self.config, f"{len(items)} embeddings for {sent} inputs", reply)
        rows = [dig(item, "values") for item in items]
        vectors = float_rows(rows, self.config, reply)
        return checked(self.config, reply, vectors, list(range(sent)), None, sent=sent,
                       dimensions=dimensions)

