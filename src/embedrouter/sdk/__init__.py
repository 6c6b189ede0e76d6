"""embedrouter's Python SDK: OpenRouter's ``embeddings`` surface, plus Result-returning functions.

Code written for the official ``openrouter`` SDK ports by changing the import::

    from embedrouter.sdk import EmbedRouter

    with EmbedRouter(api_key="sk-er-v1-...", server_url="http://127.0.0.1:8000/api/v1") as c:
        res = c.embeddings.generate(input="hello", model="sentence-transformers/all-minilm-l6-v2")

Depends only on httpx (numpy for ``to_numpy`` / ``embed_many``); imports no server code.
"""

from embedrouter.sdk import _exceptions as errors
from embedrouter.sdk._backoff import BackoffStrategy, RetryConfig
from embedrouter.sdk._catalog import (
    Model,
    ModelArchitecture,
    ModelLinks,
    ModelsListResponse,
    ModelsListResponseLinks,
    PerRequestLimits,
    PublicPricing,
    TopProviderInfo,
)
from embedrouter.sdk._client import EmbedRouter
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    BadGatewayResponseError,
    BadRequestResponseError,
    ClientClosedRequestResponseError,
    EdgeNetworkTimeoutResponseError,
    EmbedRouterError,
    ErrorData,
    ErrorDetail,
    ForbiddenResponseError,
    GatewayTimeoutResponseError,
    InternalServerResponseError,
    NoResponseError,
    NotFoundResponseError,
    OpenRouterDefaultError,
    OpenRouterError,
    PayloadTooLargeResponseError,
    PaymentRequiredResponseError,
    ProviderOverloadedResponseError,
    RequestTimeoutResponseError,
    RequestValidationError,
    ResponseValidationError,
    ServiceUnavailableResponseError,
    TooManyRequestsResponseError,
    UnauthorizedResponseError,
)
from embedrouter.sdk._generate import (
    AsyncListEmbeddingsModelsResponse,
    Embeddings,
    GenerateAcceptEnum,
    ListEmbeddingsModelsResponse,
)
from embedrouter.sdk._responses import (
    CostDetails,
    CreateEmbeddingsResponse,
    EmbeddingData,
    EmbeddingsUsage,
    PromptTokensDetails,
    to_numpy,
)
from embedrouter.sdk._standalone import (
    CreateEmbeddingsRequest,
    Result,
    embeddings_generate,
    embeddings_generate_async,
)

__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APITimeoutError",
    "AsyncListEmbeddingsModelsResponse",
    "BackoffStrategy",
    "BadGatewayResponseError",
    "BadRequestResponseError",
    "ClientClosedRequestResponseError",
    "CostDetails",
    "CreateEmbeddingsRequest",
    "CreateEmbeddingsResponse",
    "EdgeNetworkTimeoutResponseError",
    "EmbedRouter",
    "EmbedRouterCore",
    "EmbedRouterError",
    "EmbeddingData",
    "Embeddings",
    "EmbeddingsUsage",
    "ErrorData",
    "ErrorDetail",
    "ForbiddenResponseError",
    "GatewayTimeoutResponseError",
    "GenerateAcceptEnum",
    "InternalServerResponseError",
    "ListEmbeddingsModelsResponse",
    "Model",
    "ModelArchitecture",
    "ModelLinks",
    "ModelsListResponse",
    "ModelsListResponseLinks",
    "NoResponseError",
    "NotFoundResponseError",
    "OpenRouterDefaultError",
    "OpenRouterError",
    "PayloadTooLargeResponseError",
    "PaymentRequiredResponseError",
    "PerRequestLimits",
    "PromptTokensDetails",
    "ProviderOverloadedResponseError",
    "PublicPricing",
    "RequestOptions",
    "RequestTimeoutResponseError",
    "RequestValidationError",
    "ResponseValidationError",
    "Result",
    "RetryConfig",
    "ServiceUnavailableResponseError",
    "TooManyRequestsResponseError",
    "TopProviderInfo",
    "UnauthorizedResponseError",
    "embeddings_generate",
    "embeddings_generate_async",
    "errors",
    "to_numpy",
]
