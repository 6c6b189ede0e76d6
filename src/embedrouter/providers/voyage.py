"""Voyage AI: ``POST {base_url}/embeddings`` (provider-wire-formats.md section 6).

OpenAI's reply shape (``data[i].embedding``, ``index``; usage ``usage.total_tokens``), with
Voyage's request fields: ``input_type`` is ``query``, ``document`` or null (other intents have
no Voyage equivalent, so they are sent as null, which is Voyage's plain embedding),
``output_dimension``, ``output_dtype: "float"``, and ``encoding_format`` that is either absent or
``"base64"`` (Voyage has no ``"float"`` value). Voyage's own SDK asks for base64 by default and
reads it as float32 bytes, which is what ``base64_rows`` does. Options: ``base64``, ``path``.
"""

from __future__ import annotations

from typing import Any

from embedrouter.providers.openai_compat import OpenAICompatAdapter
from embedrouter.providers.upstream import UpstreamCall, intent, texts


class VoyageAdapter(OpenAICompatAdapter):
    def body(self, call: UpstreamCall) -> dict[str, Any]:
        wanted = intent(call.input_type)
        body: dict[str, Any] = {
            "model": call.upstream_model,
            "input": texts(self.config, call),
            "input_type": wanted if wanted in ("query", "document") else None,
            "output_dtype": "float",
        }
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        if self._base64 and call.want_base64:
            body["encoding_format"] = "base64"
        return body
