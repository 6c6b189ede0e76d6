"""OpenAI's embeddings wire format, as spoken by OpenAI and the many APIs that copy it.

Covers OpenAI, Mistral, DeepInfra, Nebius, Together, Fireworks, Jina, vLLM, Infinity, TEI's
``/v1`` route and NVIDIA NIM. Differences live in ``ProviderConfig.options``, not in code:

- ``input_type_field``: the body field that carries the caller's intent (NIM: ``input_type``,
  Jina: ``task``), with ``input_type_values`` mapping intents to that provider's values;
- ``dimensions_field``: ``dimensions`` (default) or ``output_dimension`` (Mistral);
- ``base64``: false for upstreams that refuse ``encoding_format``;
- ``path``: default ``/embeddings`` appended to ``base_url``.

The option values for the providers that stay on this adapter (catalog/builtin.toml carries them;
[U] = unconfirmed, see provider-wire-formats.md):

============ ==================== ============================================ ================
provider     ``input_type_field`` ``input_type_values``                        other options
============ ==================== ============================================ ================
NVIDIA NIM   ``input_type``       query=query, document=passage                —
Jina         ``task``             query=retrieval.query,                       ``base64=false``
                                  document=retrieval.passage,                  (Jina's base64
                                  similarity=text-matching,                    knob is
                                  classification=classification,               ``embedding_type``
                                  clustering=separation (v3)                   [U])
Mistral      —                    —                                            ``dimensions_field
                                                                               =output_dimension``
============ ==================== ============================================ ================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedrouter.providers.upstream import (
    HttpReply,
    JsonAdapter,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    base64_rows,
    checked,
    failure,
    float_rows,
    intent,
    invalid_reply,
    load_json,
    token_count,
)


class OpenAICompatAdapter(JsonAdapter):
    PATH = "/embeddings"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        opts = config.options
        self._base64 = bool(opts.get("base64", True))
        self._dim_field = str(opts.get("dimensions_field", "dimensions"))
        self._type_field = opts.get("input_type_field")
        self._type_values = dict(opts.get("input_type_values", {}))

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        body: dict[str, Any] = {"model": call.upstream_model, "input": list(call.inputs)}
        if call.dimensions is not None:
            body[self._dim_field] = call.dimensions
        if self._base64 and call.want_base64:
            body["encoding_format"] = "base64"
        if self._type_field and call.input_type is not None:
            wanted = intent(call.input_type)
            body[self._type_field] = self._type_values.get(wanted, wanted)
        return body

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None
              ) -> UpstreamReply:
        body = load_json(reply)
        if not 200 <= reply.status < 300:
            raise failure(self.config, reply, body)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise invalid_reply(self.config, "no `data` array", reply)
        data = body["data"]
        if len(data) != sent:
            raise invalid_reply(self.config, f"{len(data)} embeddings for {sent} inputs", reply)
        try:
            # The common, well-formed reply in two comprehensions; anything odd is named below.
            indices: list[int] = [item["index"] for item in data]
            rows: list[Any] = [item["embedding"] for item in data]
            if indices and set(map(type, indices)) != {int}:
                raise TypeError
        except (TypeError, KeyError):
            rows, indices = [], []
            for pos, item in enumerate(data):
                if not isinstance(item, dict):
                    raise invalid_reply(self.config, f"data[{pos}] is not an object",
                                        reply) from None
                index = item.get("index", pos)
                if isinstance(index, bool) or not isinstance(index, int):
                    raise invalid_reply(self.config, f"data[{pos}].index is not an integer",
                                        reply) from None
                indices.append(index)
                rows.append(item.get("embedding"))
        vectors = self._vectors(rows, reply)
        return checked(self.config, reply, vectors, indices, _prompt_tokens(body.get("usage")),
                       sent=sent, dimensions=dimensions)

    def _vectors(self, rows: list[Any], reply: HttpReply) -> np.ndarray:
        if rows and isinstance(rows[0], str):  # base64_rows checks every row
            return base64_rows(rows, self.config, reply)
        return float_rows(rows, self.config, reply)


def _prompt_tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    for key in ("prompt_tokens", "total_tokens"):
        value = token_count(usage.get(key))
        if value is not None:
            return value
    return None
