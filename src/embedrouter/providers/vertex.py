"""Google Vertex AI text embeddings: ``POST {base_url}/publishers/google/models/{m}:predict``
(provider-wire-formats.md section 8).

``base_url`` is the project's location root, e.g.
``https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/us-central1``. The key is
an OAuth2 access token sent as ``Authorization: Bearer``; such tokens expire after about an hour,
so whoever configures one must refresh it (no token minting here).

Body: ``instances[]`` of ``{content, task_type}`` (snake_case) and ``parameters`` with
``outputDimensionality`` (camelCase). Reply: ``predictions[i].embeddings.values`` in request
order, usage the sum of ``predictions[i].embeddings.statistics.token_count`` (None if any item
lacks it). Errors: Google's RPC envelope, read as for Gemini. Options: ``task_types`` (as
gemini.py), ``auto_truncate`` (sent as ``parameters.autoTruncate`` only when set; Vertex's own
default is true).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from embedrouter.providers.gemini import TASK_TYPES, google_failure, model_name
from embedrouter.providers.upstream import (
    HttpReply,
    JsonAdapter,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
    checked,
    dig,
    float_rows,
    intent,
    invalid_reply,
    load_json,
    texts,
    token_count,
)


class VertexAdapter(JsonAdapter):
    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        opts = config.options
        self._tasks = {**TASK_TYPES, **dict(opts.get("task_types", {}))}
        self._auto_truncate = opts.get("auto_truncate")

    def url(self, call: UpstreamCall) -> str:
        model = quote(model_name(call.upstream_model), safe="")
        return f"{self._root}/publishers/google/models/{model}:predict"

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        wanted = intent(call.input_type)
        task = None if wanted is None else self._tasks.get(wanted, wanted.upper())
        instances = []
        for text in texts(self.config, call):
            item: dict[str, Any] = {"content": text}
            if task is not None:
                item["task_type"] = task
            instances.append(item)
        parameters: dict[str, Any] = {}
        if call.dimensions is not None:
            parameters["outputDimensionality"] = call.dimensions
        if self._auto_truncate is not None:
            parameters["autoTruncate"] = bool(self._auto_truncate)
        body: dict[str, Any] = {"instances": instances}
        if parameters:
            body["parameters"] = parameters
        return body

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None
              ) -> UpstreamReply:
        body = load_json(reply)
        if not 200 <= reply.status < 300:
            raise google_failure(self.config, reply, body)
        items = dig(body, "predictions")
        if not isinstance(items, list):
            raise invalid_reply(self.config, "no `predictions` array", reply)
        if len(items) != sent:
            raise invalid_reply(self.config, f"{len(items)} embeddings for {sent} inputs", reply)
        rows = [dig(item, "embeddings", "values") for item in items]
        vectors = float_rows(rows, self.config, reply)
        counts = [token_count(dig(item, "embeddings", "statistics", "token_count"))
                  for item in items]
        tokens = None if any(c is None for c in counts) else sum(c for c in counts if c)
        return checked(self.config, reply, vectors, list(range(sent)), tokens, sent=sent,
                       dimensions=dimensions)

