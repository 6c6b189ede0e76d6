"""The fake upstreams' non-OpenAI-shaped wire formats: Cohere v2, Gemini, Vertex, Ollama, TEI
(provider-wire-formats.md sections 5, 7-10). Bodies marked [U] there are reproduced as the
reference gives them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from tests.support.fake_formats import Parsed, Reject, Wire, b64_vector


class CohereWire(Wire):
    name = "cohere"
    route = r"/v2/embed"
    max_inputs = 96
    INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")

    def envelope(self, status: int, message: str, code: str | None = None) -> Any:
        return {"id": "fake-request-id", "message": message}

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(401, self.envelope(401, "invalid api token"))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        if not isinstance(body, dict) or not body.get("model") or not body.get("texts"):
            return Reject(400, self.envelope(400, "invalid request: model and texts are "
                                                  "required"))
        if body.get("input_type") not in self.INPUT_TYPES:
            return Reject(400, self.envelope(400, "invalid request: input_type is required "
                                                  "for Embed v3+ models"))
        if len(body["texts"]) > self.max_inputs:
            return Reject(400, self.envelope(
                400, f"invalid request: total number of texts must be at most "
                     f"{self.max_inputs} - received {len(body['texts'])}"))
        types = body.get("embedding_types") or ["float"]
        return Parsed(body["texts"], body.get("output_dimension"), "base64" in types,
                      body["model"], {"types": types})

    def success(self, req: Parsed, vecs: np.ndarray, tokens: int, flaws: set[str]) -> Any:
        rows: dict[str, Any] = {}
        for kind in req.extra["types"]:
            rows[kind] = [b64_vector(v) if kind == "base64" else v.tolist() for v in vecs]
            if "short" in flaws:
                rows[kind].pop()
            if "bad_base64" in flaws and kind == "base64":
                rows[kind][0] = "not*base64"
        meta: dict[str, Any] = {"api_version": {"version": "2"}}
        if "no_usage" not in flaws:
            meta["billed_units"] = {"input_tokens": tokens}
        return {"id": "fake", "response_type": "embeddings_by_type", "embeddings": rows,
                "texts": req.inputs, "meta": meta}

    def rate_limited(self, retry: float | None) -> Reject:
        return Reject(429, self.envelope(429, "You are using a Trial key, which is limited to "
                                              "100 API calls / minute."))

    def too_large(self) -> Reject:
        return Reject(400, self.envelope(400, "invalid request: total number of texts must be "
                                              "at most 96 - received 120"))


class GoogleWire(Wire):
    """The RPC error envelope Gemini and Vertex share."""

    STATUS: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
        404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE",
        503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

    def envelope(self, status: int, message: str, code: str | None = None,
                 details: list[Any] | None = None) -> Any:
        err: dict[str, Any] = {"code": status, "message": message,
                               "status": code or self.STATUS.get(status, "UNKNOWN")}
        if details:
            err["details"] = details
        return {"error": err}

    def rate_limited(self, retry: float | None) -> Reject:
        details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []}]
        if retry is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": f"{retry:g}s"})
        return Reject(429, self.envelope(429, "Resource has been exhausted (e.g. check quota).",
                                         details=details))

    def overloaded(self) -> Reject:
        return Reject(503, self.envelope(503, "The model is overloaded. Please try again later."))

    def plain(self, status: int) -> Reject:
        return Reject(status, self.envelope(status, "The service is currently unavailable."
                                            if status == 503 else "Internal error encountered."))


class GeminiWire(GoogleWire):
    name = "gemini"
    route = r"/v1beta/models/(?P<model>[^/:]+):batchEmbedContents"
    auth_header = "x-goog-api-key"
    max_inputs = 100

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(400, self.envelope(400, "API key not valid. Please pass a valid API key.",
                                         details=[{"@type": "type.googleapis.com/google.rpc."
                                                   "ErrorInfo", "reason": "API_KEY_INVALID",
                                                   "domain": "googleapis.com"}]))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return Reject(400, self.envelope(400, "* BatchEmbedContentsRequest.requests: "
                                                  "contents is not specified"))
        if len(requests) > self.max_inputs:
            return self.too_large()
        model = f"models/{match.group('model')}"
        texts = []
        for item in requests:
            parts = (item.get("content") or {}).get("parts") if isinstance(item, dict) else None
            if (not isinstance(item, dict) or item.get("model") != model or not parts
                    or "text" not in parts[0]):
                return Reject(400, self.envelope(400, "* BatchEmbedContentsRequest.requests"
                                                      "[0].model: model must match the URL"))
            texts.append(parts[0]["text"])
        return Parsed(texts, requests[0].get("outputDimensionality"), False, model,
                      {"tasks": [r.get("taskType") for r in requests]})

    def success(self, req: Parsed, vecs: np.ndarray, tokens: int, flaws: set[str]) -> Any:
        items = [{"values": v.tolist()} for v in vecs]
        if "short" in flaws:
            items.pop()
        return {"embeddings": items}

    def too_large(self) -> Reject:
        return Reject(400, self.envelope(400, "* BatchEmbedContentsRequest.requests: at most "
                                              "100 requests can be in one batch"))


class VertexWire(GoogleWire):
    name = "vertex"
    route = (r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
             r"/publishers/google/models/(?P<model>[^/:]+):predict")
    max_inputs = 250

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(401, self.envelope(401, "Request had invalid authentication credentials. "
                                              "Expected OAuth 2 access token."))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances or not all(
                isinstance(i, dict) and isinstance(i.get("content"), str) for i in instances):
            return Reject(400, self.envelope(400, "Invalid JSON payload: instances[].content "
                                                  "is required"))
        if len(instances) > self.max_inputs:
            return self.too_large()
        params = body.get("parameters") or {}
        return Parsed([i["content"] for i in instances], params.get("outputDimensionality"),
                      False, match.group("model"),
                      {"tasks": [i.get("task_type") for i in instances]})

    def success(self, req: Parsed, vecs: np.ndarray, tokens: int, flaws: set[str]) -> Any:
        items = []
        for text, v in zip(req.inputs, vecs, strict=True):
            stats: dict[str, Any] = {"truncated": False}
            if "no_usage" not in flaws:
                stats["token_count"] = max(1, len(text.split()))
            items.append({"embeddings": {"values": v.tolist(), "statistics": stats}})
        if "short" in flaws:
            items.pop()
        return {"predictions": items, "metadata": {"billableCharacterCount": 1}}

    def too_large(self) -> Reject:
        return Reject(400, self.envelope(400, "Unable to submit request because it has more "
                                              "than 250 instances; only 250 instance(s) is "
                                              "allowed."))


class OllamaWire(Wire):
    name = "ollama"
    route = r"/api/embed"
    auth_required = False

    def envelope(self, status: int, message: str, code: str | None = None) -> Any:
        return {"error": message}

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(401, self.envelope(401, "unauthorized"))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        if not isinstance(body, dict) or not body.get("model"):
            return Reject(400, self.envelope(400, "model is required"))
        if body["model"] == "missing-model":
            return Reject(404, self.envelope(404, f"model \"{body['model']}\" not found, try "
                                                  "pulling it first"))
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        if not all(isinstance(t, str) for t in inputs):
            return Reject(400, self.envelope(400, "invalid input type"))
        return Parsed(inputs, body.get("dimensions"), False, body["model"])

    def success(self, req: Parsed, vecs: np.ndarray, tokens: int, flaws: set[str]) -> Any:
        rows = [v.tolist() for v in vecs]
        if "short" in flaws:
            rows.pop()
        body: dict[str, Any] = {"model": req.model, "embeddings": rows,
                                "total_duration": 14143917, "load_duration": 1019500}
        if "no_usage" not in flaws:
            body["prompt_eval_count"] = tokens
        return body

    def rate_limited(self, retry: float | None) -> Reject:
        return Reject(429, self.envelope(429, "too many requests"))

    def overloaded(self) -> Reject:
        return Reject(503, self.envelope(503, "server overloaded, please retry later"))

    def too_large(self) -> Reject:
        return Reject(400, self.envelope(400, "too many inputs in one request"))


class TeiWire(Wire):
    name = "tei"
    route = r"/embed"
    max_inputs = 32
    auth_required = False  # TEI checks a key only when started with --api-key

    def envelope(self, status: int, message: str, code: str | None = None) -> Any:
        return {"error": message,
                "error_type": code or ("Validation" if status < 500 else "Backend")}

    def auth_error(self, headers: Mapping[str, str]) -> Reject:
        return Reject(401, self.envelope(401, "Unauthorized", "Unauthorized"))

    def parse(self, body: Any, match: re.Match[str], query: Mapping[str, str]
              ) -> Parsed | Reject:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if inputs is None:
            return Reject(422, self.envelope(422, "missing field `inputs`", "Validation"))
        inputs = inputs if isinstance(inputs, list) else [inputs]
        if not inputs:
            return Reject(400, self.envelope(400, "`inputs` cannot be empty", "Empty"))
        if len(inputs) > self.max_inputs:
            return self.too_large()
        return Parsed(inputs, body.get("dimensions"), False, "",
                      {k: body[k] for k in ("prompt_name", "normalize", "truncate") if k in body})

    def success(self, req: Parsed, vecs: np.ndarray, tokens: int, flaws: set[str]) -> Any:
        rows = [v.tolist() for v in vecs]
        if "short" in flaws:
            rows.pop()
        return rows

    def rate_limited(self, retry: float | None) -> Reject:
        return Reject(429, self.envelope(429, "Model is overloaded", "Overloaded"))

    def overloaded(self) -> Reject:
        # TEI has no overloaded status of its own besides the 429 above; a 529 from a proxy in
        # front of it is the only overloaded signal an adapter can see.
        return Reject(529, {"error": "Overloaded"})

    def plain(self, status: int) -> Reject:
        if status == 503:
            return Reject(503, self.envelope(503, "unhealthy", "Unhealthy"))
        return Reject(status, self.envelope(status, "backend error", "Backend"))

    def too_large(self) -> Reject:
        return Reject(413, self.envelope(413, f"batch size 40 > maximum allowed batch size "
                                              f"{self.max_inputs}", "Validation"))
