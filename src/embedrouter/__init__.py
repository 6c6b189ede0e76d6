"""embedrouter: a self-hostable embeddings router that speaks OpenRouter's embeddings API.

``from embedrouter import EmbedRouter`` gives the SDK client; it is loaded on first use so that
importing the package costs nothing and pulls in no server code.
"""

from typing import Any

__version__ = "0.1.0"

_SDK_NAMES = frozenset({"EmbedRouter", "EmbedRouterCore", "RetryConfig", "BackoffStrategy",
                        "embeddings_generate", "embeddings_generate_async", "Result"})

__all__ = ["__version__", *sorted(_SDK_NAMES)]


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from embedrouter import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'embedrouter' has no attribute {name!r}")
