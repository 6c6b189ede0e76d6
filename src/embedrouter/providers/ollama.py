"""Ollama's native embed API: ``POST {base_url}/api/embed`` (provider-wire-formats.md section 9).

Body ``{model, input, dimensions?, truncate?}``; reply ``embeddings[i]`` in input order, usage
``prompt_eval_count``. Errors are ``{"error": "message"}``. Auth: none locally; a key, if set
(ollama.com), goes as ``Authorization: Bearer``. Options: ``truncate`` (sent only when set;
Ollama's default is true, which cuts long inputs silently), ``keep_alive``, ``path``.
"""

from __future__ import annotations

from typing import Any

from embedrouter.providers.upstream import (
    HttpReply,
    JsonAdapter,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    checked,
    failure,
    float_rows,
    invalid_reply,
    load_json,
    texts,
    token_count,
)


class OllamaAdapter(JsonAdapter):
    PATH = "/api/embed"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        opts = config.options
        self._extra: dict[str, Any] = {}
        if opts.get("truncate") is not None:
            self._extra["truncate"] = bool(opts["truncate"])
        if opts.get("keep_alive") is not None:
            self._extra["keep_alive"] = opts["keep_alive"]

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        body: dict[str, Any] = {"model": call.upstream_model, "input": texts(self.config, call)}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        return {**body, **self._extra}

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None
              ) -> UpstreamReply:
        body = load_json(reply)
        if not 200 <= reply.status < 300:
            raise failure(self.config, reply, body)
        rows = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise invalid_reply(self.config, "no `embeddings` array", reply)
        if len(rows) != sent:
            raise invalid_reply(self.config, f"{len(rows)} embeddings for {sent} inputs", reply)
        vectors = float_rows(rows, self.config, reply)
        return checked(self.config, reply, vectors, list(range(sent)),
                       token_count(body.get("prompt_eval_count")), sent=sent,
                       dimensions=dimensions)

