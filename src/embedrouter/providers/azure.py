"""Azure OpenAI, deployment form: OpenAI's body and reply under a per-deployment URL.

``POST {base_url}/openai/deployments/{deployment}/embeddings?api-version={api_version}`` with an
``api-key`` header (provider-wire-formats.md section 2). Options:

- ``api_version``: required query parameter; default ``2024-10-21`` (a GA version);
- ``deployments``: upstream model -> deployment name, for resources whose deployments are not
  named after the model; by default the deployment is the upstream model;
- ``auth``: ``api-key`` (default) or ``bearer`` (a Microsoft Entra token given as the key; it
  expires, so whoever configures it must rotate it);
- ``base64``, ``dimensions_field``: as for openai_compat.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from embedrouter.providers.openai_compat import OpenAICompatAdapter
from embedrouter.providers.upstream import ProviderConfig, UpstreamCall

DEFAULT_API_VERSION = "2024-10-21"


class AzureAdapter(OpenAICompatAdapter):
    def __init__(self, config: ProviderConfig, http: Any) -> None:
        super().__init__(config, http)
        opts = config.options
        self._api_version = str(opts.get("api_version", DEFAULT_API_VERSION))
        self._deployments = {str(k): str(v) for k, v in dict(opts.get("deployments", {})).items()}

    def _auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        if not key:
            return {}
        if str(self.config.options.get("auth", "api-key")) == "bearer":
            return {"authorization": f"Bearer {key}"}
        return {"api-key": key}

    def url(self, call: UpstreamCall) -> str:
        deployment = self._deployments.get(call.upstream_model, call.upstream_model)
        return (f"{self._root}/openai/deployments/{quote(deployment, safe='')}/embeddings"
                f"?api-version={quote(self._api_version, safe='')}")
