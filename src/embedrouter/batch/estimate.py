"""``--dry-run``: how many tokens the job will send and what they will cost, spending nothing.

Tokens are exact where this machine has the model's tokenizer (any local model of the settings,
which includes the default one; a server of that slug counts with the same tokenizer), else an
upper-bound estimate of one token per 3 UTF-8 bytes (the router's own estimate). The price
comes from the router's model list (``GET /embeddings/models``) for a URL, or from the settings
in-process; both in USD per million tokens, as exact decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from embedrouter.batch.embedders import Target, local_settings
from embedrouter.batch.errors import BatchError

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int
    exact: bool  # counted by the model's tokenizer, not estimated
    price_per_million: Decimal | None  # None: the router did not list the model

    @property
    def cost(self) -> Decimal | None:
        if self.price_per_million is None:
            return None
        return self.price_per_million * self.tokens / MILLION


def _local_model_dir(settings: Any, slug: str) -> Any:
    from pathlib import Path

    from embedrouter.engine import default_model_dir

    for cfg in settings.all_models():
        if cfg.slug == slug.lower() and "embeddings" in cfg.output_modalities:
            return Path(cfg.path).expanduser() if cfg.path else default_model_dir()
    return None


def count_tokens(settings: Any, slug: str, texts: list[str]) -> tuple[int, bool]:
    """Tokens of ``texts`` as the router will count them ([CLS] and [SEP] included)."""
    model_dir = _local_model_dir(settings, slug)
    if model_dir is None:
        from embedrouter.router.dispatch import estimate_tokens

        return sum(map(estimate_tokens, texts)), False
    from tokenizers import Tokenizer

    from embedrouter.engine.model_dir import read_model_dir

    tok = Tokenizer.from_file(str(read_model_dir(model_dir).tokenizer_path))
    tok.no_truncation()
    tok.no_padding()
    total = 0
    for start in range(0, len(texts), 4096):  # bounded memory for the encodings
        total += sum(len(e.ids) for e in tok.encode_batch(texts[start:start + 4096],
                                                          add_special_tokens=True))
    return total, True


def _settings_price(settings: Any, slug: str) -> Decimal | None:
    slug = slug.lower()
    for cfg in settings.all_models():
        if cfg.slug == slug:
            return cfg.price_per_million  # type: ignore[no-any-return]
    for remote in settings.remote_models:
        if remote.slug == slug and remote.endpoints:
            return min(ep.price_per_million for ep in remote.endpoints)  # type: ignore[no-any-return]
    return None


async def _listed_price(target: Target) -> Decimal | None:
    from embedrouter.sdk import EmbedRouter, EmbedRouterError

    async with EmbedRouter(api_key=target.key, server_url=target.url) as client:
        try:
            async for page in await client.embeddings.list_models_async():
                for m in page.result.data:
                    if m.id.lower() == target.model.lower():
                        return Decimal(m.pricing.prompt) * MILLION
        except EmbedRouterError as exc:
            if exc.status_code == 404:
                return None  # an OpenAI-style server without a model list: price unknown
            raise BatchError(f"cannot list the models of {target.url}: {exc.message}") from None
    return None


async def estimate(target: Target, texts: list[str]) -> Estimate:
    settings = local_settings(Target(target.model, config=target.config,
                                     data_dir=target.data_dir))
    tokens, exact = count_tokens(settings, target.model, texts)
    if target.url:
        price = await _listed_price(target)
    else:
        price = _settings_price(settings, target.model)
        if price is None:
            raise BatchError(f"model {target.model!r} is not served here; see "
                             "`embedrouter models` or pass --url")
    return Estimate(tokens=tokens, exact=exact, price_per_million=price)
