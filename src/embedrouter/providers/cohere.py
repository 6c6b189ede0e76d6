"""Cohere's v2 embed API: ``POST {base_url}/v2/embed`` (provider-wire-formats.md section 5).

``input_type`` is required on v2, so a call without one is sent as ``search_document`` (the
option ``default_input_type`` changes that). Vectors come back per requested type, aligned to the
input order; usage is ``meta.billed_units.input_tokens``. Options:

- ``base64``: ask for ``embedding_types: ["base64"]`` (base64 of the float32 bytes). Off by
  default: the docs do not state the byte order [U], and a wrong guess would give wrong vectors
  that no check here could catch; ``float`` is exact;
- ``input_type_values``: intent -> Cohere value, over the defaults below;
- ``path``: default ``/v2/embed``.

Cohere-specific statuses: 498 (invalid token) is ``auth``; 499 (request cancelled upstream) is
``unavailable``.
"""

from __future__ import annotations

from typing import Any

from embedrouter.providers.upstream import (
    HttpReply,
    JsonAdapter,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    base64_rows,
    checked,
    dig,
    failure,
    float_rows,
    intent,
    invalid_reply,
    load_json,
    texts,
    token_count,
)

INPUT_TYPES = {"query": "search_query", "document": "search_document",
               "classification": "classification", "clustering": "clustering"}
STATUS_KINDS: dict[int, Any] = {498: "auth", 499: "unavailable"}


class CohereAdapter(JsonAdapter):
    PATH = "/v2/embed"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        opts = config.options
        self._base64 = bool(opts.get("base64", False))
        self._types = {**INPUT_TYPES, **dict(opts.get("input_type_values", {}))}
        self._default_type = str(opts.get("default_input_type", "search_document"))

    def _encoding(self, call: UpstreamCall) -> str:
        return "base64" if self._base64 and call.want_base64 else "float"

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        wanted = intent(call.input_type)
        body: dict[str, Any] = {
            "model": call.upstream_model,
            "texts": texts(self.config, call),
            # Unknown intents go through unchanged: Cohere's own 400 says what it accepts.
            "input_type": self._default_type if wanted is None else self._types.get(wanted,
                                                                                    wanted),
            "embedding_types": [self._encoding(call)],
        }
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        return body

    def url(self, call: UpstreamCall) -> str:
        return self._url

    def read(self, reply: HttpReply, call: UpstreamCall) -> UpstreamReply:
        return self.parse(reply, len(call.inputs), call.dimensions, self._encoding(call))

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None,
              encoding: str = "float") -> UpstreamReply:
        body = load_json(reply)
        if not 200 <= reply.status < 300:
            raise failure(self.config, reply, body, kind=STATUS_KINDS.get(reply.status))
        rows = dig(body, "embeddings", encoding)
        if not isinstance(rows, list):
            raise invalid_reply(self.config, f"no `embeddings.{encoding}` array", reply)
        if len(rows) != sent:
            raise invalid_reply(self.config, f"{len(rows)} embeddings for {sent} inputs", reply)
        vectors = (base64_rows(rows, self.config, reply) if encoding == "base64"
                   else float_rows(rows, self.config, reply))
        tokens = token_count(dig(body, "meta", "billed_units", "input_tokens"))
        return checked(self.config, reply, vectors, list(range(sent)), tokens, sent=sent,
                       dimensions=dimensions)

