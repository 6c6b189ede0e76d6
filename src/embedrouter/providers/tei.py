"""Hugging Face text-embeddings-inference, native route: ``POST {base_url}/embed``
(provider-wire-formats.md section 10). TEI's OpenAI-shaped ``/v1/embeddings`` route is served by
openai_compat instead (it reports usage and takes base64; this one does neither).

Body ``{inputs, dimensions?, prompt_name?, normalize?, truncate?, truncation_direction?}``;
``inputs`` may be token-id arrays, which TEI takes natively. The reply is a bare list of vectors
in input order, with no usage (``prompt_tokens`` None). Errors are ``{"error", "error_type"}``
and the type decides the kind, as TEI's docs map them: ``Overloaded`` (429, the queue is full;
no Retry-After) is rate limited without a hint, ``Unhealthy`` (503) and ``Backend`` (424, the
model failed) are unavailable, ``Validation``/``Tokenizer`` (422) and ``Empty`` (400) are bad
requests, and 413 (``--max-client-batch-size`` exceeded) is too large.

Options: ``prompt_names`` (intent -> a prompt name from the model's sentence-transformers config;
intents without one are not sent, as TEI rejects unknown names), ``normalize``, ``truncate``,
``truncation_direction`` (each sent only when set), ``path``.
"""

from __future__ import annotations

from typing import Any

from embedrouter.providers.upstream import (
    HttpReply,
    JsonAdapter,
    Kind,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    checked,
    failure,
    float_rows,
    intent,
    invalid_reply,
    load_json,
    refine_kind,
)

ERROR_KINDS: dict[str, Kind] = {"Overloaded": "rate_limited", "Unhealthy": "unavailable",
                                "Backend": "unavailable", "Validation": "bad_request",
                                "Tokenizer": "bad_request", "Empty": "bad_request"}


class TeiAdapter(JsonAdapter):
    PATH = "/embed"

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        opts = config.options
        self._prompts = {str(k): str(v) for k, v in dict(opts.get("prompt_names", {})).items()}
        self._extra = {k: opts[k] for k in ("normalize", "truncate", "truncation_direction")
                       if opts.get(k) is not None}

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        inputs = [t if isinstance(t, str) else [int(i) for i in t] for t in call.inputs]
        body: dict[str, Any] = {"inputs": inputs, **self._extra}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        prompt = self._prompts.get(intent(call.input_type) or "")
        if prompt is not None:
            body["prompt_name"] = prompt
        return body

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None
              ) -> UpstreamReply:
        body = load_json(reply)
        if not 200 <= reply.status < 300:
            error_type = body.get("error_type") if isinstance(body, dict) else None
            kind = ERROR_KINDS.get(error_type) if isinstance(error_type, str) else None
            if reply.status in (401, 403, 413):  # auth and batch size: the status says it all
                kind = "auth" if reply.status != 413 else "too_large"
            elif kind == "bad_request":
                kind = refine_kind(kind, str(body.get("error", "")), None)
            raise failure(self.config, reply, body, kind=kind,
                          code=error_type if isinstance(error_type, str) else None)
        if not isinstance(body, list):
            raise invalid_reply(self.config, "the reply is not a list of vectors", reply)
        if len(body) != sent:
            raise invalid_reply(self.config, f"{len(body)} embeddings for {sent} inputs", reply)
        vectors = float_rows(body, self.config, reply)
        return checked(self.config, reply, vectors, list(range(sent)), None, sent=sent,
                       dimensions=dimensions)

