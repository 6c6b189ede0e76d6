"""OpenAI's embeddings wire format, as spoken by OpenAI and the many APIs that copy it.

Covers OpenAI, Mistral, DeepInfra, Nebius, Together, Fireworks, Jina, vLLM, Infinity, TEI's
``/v1`` route and NVIDIA NIM. Differences live in ``ProviderConfig.options``, not in code:

- ``input_type_field``: the body field that carries the caller's intent (NIM: ``input_type``,
  Jina: ``task``), with ``input_type_values`` mapping intents to that provider's values;
- ``dimensions_field``: ``dimensions`` (default) or ``output_dimension`` (Mistral);
- ``base64``: false for upstreams that refuse ``encoding_format``;
- ``path``: default ``/embeddings`` appended to ``base_url``.
"""

from __future__ import annotations

import base64 as b64
import binascii
from typing import Any

import numpy as np
import orjson

from embedrouter.providers.upstream import (
    HttpReply,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    failure,
    float_rows,
    intent,
    invalid_reply,
)


class OpenAICompatAdapter:
    def __init__(self, config: ProviderConfig, http: Any) -> None:
        self.config = config
        self._http = http
        opts = config.options
        self._url = config.base_url.rstrip("/") + str(opts.get("path", "/embeddings"))
        self._base64 = bool(opts.get("base64", True))
        self._dim_field = str(opts.get("dimensions_field", "dimensions"))
        self._type_field = opts.get("input_type_field")
        self._type_values = dict(opts.get("input_type_values", {}))
        self._headers = self._auth_headers()

    def _auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"authorization": f"Bearer {key}"} if key else {}

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

    async def embed(self, call: UpstreamCall) -> UpstreamReply:
        reply = await self._http.post(self._url, headers=self._headers,
                                      body=orjson.dumps(self.body(call)),
                                      timeout=self.config.timeout_s,
                                      provider=self.config.shown_name)
        return self.parse(reply, len(call.inputs))

    def parse(self, reply: HttpReply, sent: int) -> UpstreamReply:
        try:
            body = orjson.loads(reply.body) if reply.body else None
        except orjson.JSONDecodeError:
            body = None
        if not 200 <= reply.status < 300:
            raise failure(self.config, reply, body)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise invalid_reply(self.config, "no `data` array", reply)
        data = body["data"]
        if len(data) != sent:
            raise invalid_reply(self.config, f"{len(data)} embeddings for {sent} inputs", reply)
        rows: list[Any] = []
        indices: list[int] = []
        for pos, item in enumerate(data):
            if not isinstance(item, dict):
                raise invalid_reply(self.config, f"data[{pos}] is not an object", reply)
            index = item.get("index", pos)
            if isinstance(index, bool) or not isinstance(index, int):
                raise invalid_reply(self.config, f"data[{pos}].index is not an integer", reply)
            indices.append(index)
            rows.append(item.get("embedding"))
        vectors = self._vectors(rows, reply)
        return UpstreamReply(vectors, indices, _prompt_tokens(body.get("usage")))

    def _vectors(self, rows: list[Any], reply: HttpReply) -> np.ndarray:
        if rows and all(isinstance(r, str) for r in rows):
            try:
                raw = [b64.b64decode(r, validate=True) for r in rows]
            except (binascii.Error, ValueError):
                raise invalid_reply(self.config, "an embedding is not valid base64",
                                    reply) from None
            if len({len(r) for r in raw}) != 1 or len(raw[0]) == 0 or len(raw[0]) % 4:
                raise invalid_reply(self.config, "base64 embeddings of unequal or odd length",
                                    reply)
            return np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), -1).astype(
                np.float32)
        return float_rows(rows, self.config, reply)

    async def close(self) -> None:
        return None


def _prompt_tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    for key in ("prompt_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
