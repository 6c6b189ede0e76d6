"""Which endpoints of a model to try, in which order: `provider` preferences as a pure function.

Semantics (openrouter-api.md section 3): filters (``only``, ``ignore``, ``quantizations``,
``data_collection``, ``zdr``, ``require_parameters``, ``max_price``) remove endpoints; ``order``
and ``sort`` (or the ``:nitro`` / ``:floor`` suffixes) fix the order; otherwise the first endpoint
is drawn at random among the stable ones, weighted by the inverse square of price, and the rest
follow as fallbacks (stable by price, then the unstable ones). ``preferred_*`` only move
endpoints to the back. Nothing here does I/O: health and statistics come in as arguments.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.errors import InvalidRequest, NotFound

RECENT_FAILURE_S = 30.0
_SUFFIX_SORT = {"nitro": "throughput", "floor": "price"}
_SUFFIX_TIER = {"nitro": "priority", "floor": "flex"}


@dataclass(frozen=True, slots=True)
class Health:
    """What this instance has seen of one endpoint lately."""

    last_failure: float | None = None  # monotonic seconds
    rate_limited_until: float | None = None  # from an upstream 429's retry hint
    throughput: Mapping[str, float] | None = None  # tokens/s by percentile (p50, p75, ...)
    latency: Mapping[str, float] | None = None  # seconds by percentile


@dataclass(frozen=True, slots=True)
class Plan:
    """Endpoints to try, in order; ``resting`` are out of rotation (rate limited) until then."""

    attempts: tuple[EndpointSpec, ...]
    resting: tuple[tuple[EndpointSpec, float], ...] = ()


def split_variant(slug: str) -> tuple[str, str | None]:
    """``author/model:nitro`` -> (``author/model``, ``nitro``); other suffixes stay in the slug."""
    base, sep, suffix = slug.rpartition(":")
    if sep and suffix in _SUFFIX_SORT:
        return base, suffix
    return slug, None


def matches(endpoint: EndpointSpec, name: str) -> bool:
    """A base slug matches every variant and region of that provider, not its service tiers;
    a full slug or the display name matches exactly (case-insensitive)."""
    name = name.strip().lower()
    if name == endpoint.provider:
        return True
    # A service tier is reached only by its own full slug, never by the provider's name.
    return endpoint.tier is None and name in (endpoint.base_slug, endpoint.display_name.lower())


def _any_match(endpoint: EndpointSpec, names: Iterable[str] | None) -> bool:
    return any(matches(endpoint, n) for n in names or ())


def _max_prompt_price(prefs: Mapping[str, Any]) -> Decimal | None:
    raw = (prefs.get("max_price") or {}).get("prompt")
    if raw is None:
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidRequest(f"provider.max_price.prompt: {raw!r} is not a number",
                             metadata={"field": "provider.max_price.prompt"}) from None
    if not value.is_finite() or value < 0:
        raise InvalidRequest("provider.max_price.prompt: must be a non-negative number",
                             metadata={"field": "provider.max_price.prompt"})
    return value


def _filters(prefs: Mapping[str, Any], params: frozenset[str], variant: str | None):  # type: ignore[no-untyped-def]
    """(reason, keep-predicate) pairs, in the vocabulary of `availability.excluded_by`."""
    explicit = [*(prefs.get("order") or ()), *(prefs.get("only") or ())]
    tier = _SUFFIX_TIER.get(variant or "")
    out = [("allowed_providers",
            lambda ep: ep.tier is None or ep.tier == tier or _any_match(ep, explicit))]
    if prefs.get("only"):
        out.append(("allowed_providers", lambda ep: _any_match(ep, prefs["only"])))
    if prefs.get("ignore"):
        out.append(("allowed_providers", lambda ep: not _any_match(ep, prefs["ignore"])))
    if prefs.get("quantizations"):
        wanted = set(prefs["quantizations"])
        out.append(("quantization", lambda ep: ep.quantization in wanted))
    if prefs.get("data_collection") == "deny":
        out.append(("data_policy:training", lambda ep: ep.data_collection == "deny"))
    if prefs.get("zdr"):
        out.append(("data_policy:zdr", lambda ep: ep.zdr))
    if prefs.get("require_parameters"):
        out.append(("require_parameters", lambda ep: params <= ep.supported_params))
    cap = _max_prompt_price(prefs)
    if cap is not None:
        out.append(("max_price", lambda ep: ep.price_per_million <= cap))
    return out


def _percentile_value(stats: Mapping[str, float] | None, key: str) -> float | None:
    return None if stats is None else stats.get(key)


def _sort_key(by: str, health: Mapping[str, Health]):  # type: ignore[no-untyped-def]
    inf = float("inf")

    def key(ep: EndpointSpec) -> tuple[float, Decimal]:
        h = health.get(ep.provider, Health())
        if by == "throughput":
            v = _percentile_value(h.throughput, "p50")
            return (-v if v is not None else inf, ep.price_per_million)
        if by == "latency":
            v = _percentile_value(h.latency, "p50")
            return (v if v is not None else inf, ep.price_per_million)
        return (0.0, ep.price_per_million)

    return key


def _sort_by(prefs: Mapping[str, Any], variant: str | None) -> str | None:
    sort = prefs.get("sort")
    if isinstance(sort, Mapping):
        sort = sort.get("by")
    if sort in ("price", "throughput", "latency"):
        return sort
    if sort == "exacto":  # a chat tool-calling quality ranking; for embeddings: by price
        return "price"
    return _SUFFIX_SORT.get(variant or "")


def _meets(value: float | None, bound: float, higher_is_better: bool) -> bool:
    if value is None:  # no data yet: not held against the endpoint
        return True
    return value >= bound if higher_is_better else value <= bound


def _preferred(prefs: Mapping[str, Any], health: Mapping[str, Health]):  # type: ignore[no-untyped-def]
    wanted_tp = prefs.get("preferred_min_throughput", prefs.get("min_throughput"))
    wanted_lat = prefs.get("preferred_max_latency", prefs.get("max_latency"))

    def ok(ep: EndpointSpec) -> bool:
        h = health.get(ep.provider, Health())
        for wanted, stats, higher in ((wanted_tp, h.throughput, True),
                                      (wanted_lat, h.latency, False)):
            if wanted is None:
                continue
            bounds = {"p50": wanted} if isinstance(wanted, int | float) else wanted
            for pct, bound in bounds.items():
                if bound is not None and not _meets(_percentile_value(stats, pct), bound, higher):
                    return False
        return True

    return ok


def _inverse_square_pick(candidates: Sequence[EndpointSpec], rng: random.Random) -> int:
    free = [i for i, ep in enumerate(candidates) if ep.price_per_million == 0]
    if free:  # a free endpoint outweighs any priced one
        return rng.choice(free)
    weights = [1.0 / float(ep.price_per_million) ** 2 for ep in candidates]
    return rng.choices(range(len(candidates)), weights=weights)[0]


def plan(
    endpoints: Sequence[EndpointSpec],
    prefs: Mapping[str, Any] | None,
    *,
    slug: str,
    variant: str | None = None,
    params: frozenset[str] = frozenset(),
    health: Mapping[str, Health] | None = None,
    now: float = 0.0,
    rng: random.Random | None = None,
) -> Plan:
    """The endpoints to try for one request, in order. 404 ``constraint_filtered`` when the
    preferences leave none; ``Plan.attempts`` is empty when all that are left are resting."""
    prefs = prefs or {}
    health = health or {}
    rng = rng or random.Random()
    left = list(endpoints)
    excluded_by: list[str] = []
    for reason, keep in _filters(prefs, params, variant):
        kept = [ep for ep in left if keep(ep)]
        if len(kept) < len(left) and reason not in excluded_by:
            excluded_by.append(reason)
        left = kept
    if not left:
        raise NotFound(
            f"No endpoint of model {slug!r} meets the request's provider preferences "
            f"({', '.join(excluded_by)})",
            metadata={"availability": {"code": "constraint_filtered", "retryable": False,
                                       "requested_models": [slug], "excluded_by": excluded_by}},
        )

    order = prefs.get("order") or []
    by = _sort_by(prefs, variant)
    if by is not None:
        left.sort(key=_sort_key(by, health))  # stable: ties keep the catalog's order
    elif not order:
        stable = [ep for ep in left if not _failed_recently(health.get(ep.provider), now)]
        shaky = [ep for ep in left if ep not in stable]
        stable.sort(key=lambda ep: ep.price_per_million)
        shaky.sort(key=lambda ep: ep.price_per_million)
        if stable:
            stable.insert(0, stable.pop(_inverse_square_pick(stable, rng)))
        left = stable + shaky
    if order:
        first = [ep for name in order for ep in left if matches(ep, name)]
        first = list(dict.fromkeys(first))
        rest = [ep for ep in left if ep not in first]
        if by is None:  # `order` turns the random draw off: the fallbacks go cheapest first
            rest.sort(key=lambda ep: ep.price_per_million)
        left = first + ([] if prefs.get("allow_fallbacks") is False else rest)
    elif prefs.get("allow_fallbacks") is False:
        left = left[:1]

    ok = _preferred(prefs, health)
    left = [ep for ep in left if ok(ep)] + [ep for ep in left if not ok(ep)]

    resting = tuple((ep, until) for ep in left
                    if (until := _resting_until(health.get(ep.provider), now)) is not None)
    resting_set = {ep for ep, _ in resting}
    return Plan(tuple(ep for ep in left if ep not in resting_set), resting)


def _failed_recently(h: Health | None, now: float) -> bool:
    return h is not None and h.last_failure is not None and now - h.last_failure < RECENT_FAILURE_S


def _resting_until(h: Health | None, now: float) -> float | None:
    if h is None or h.rate_limited_until is None or h.rate_limited_until <= now:
        return None
    return h.rate_limited_until


# plan() draws only without an ``order``, and local_endpoint then puts the model's own list order
# back, so the draw never decides: one shared generator instead of seeding one per request (4 us).
_DISCARDED_DRAW = random.Random(0)


def local_endpoint(endpoints: Sequence[EndpointSpec], prefs: Mapping[str, Any] | None, *,
                   slug: str, variant: str | None = None,
                   params: frozenset[str] = frozenset()) -> EndpointSpec:
    """Which precision of a local model serves a request.

    ``endpoints`` is the model's list, its default precision first. The request's filters apply as
    for any model (404 ``constraint_filtered`` when none is left). Then only the default serves
    it unless the request allows another, by its ``quantization`` in ``provider.quantizations``
    or by its slug (``local/int8``) in ``order`` / ``only``: a lower precision is never a silent
    fallback, because vectors of two precisions mixed in one index degrade retrieval. Among
    those allowed, ``order`` decides, else the model's list does: the random draw between equally
    priced endpoints does not apply (a client must not get one precision now and another next
    time), nor do fallbacks (a local endpoint is never rate limited or down on its own).
    """
    prefs = dict(prefs or {})
    prefs.pop("allow_fallbacks", None)
    attempts = plan(endpoints, prefs, slug=slug, variant=variant, params=params,
                    rng=_DISCARDED_DRAW).attempts
    quantizations = set(prefs.get("quantizations") or ())
    named = {n.strip().lower() for n in (*(prefs.get("order") or ()), *(prefs.get("only") or ()))}
    default = endpoints[0]
    allowed = [ep for ep in attempts
               if ep is default or ep.quantization in quantizations or ep.provider in named]
    if not allowed:
        raise NotFound(
            f"No endpoint of model {slug!r} meets the request's provider preferences: its "
            f"default precision ({default.quantization}) was excluded, and another precision "
            "serves a request only when provider.quantizations names it",
            metadata={"availability": {"code": "constraint_filtered", "retryable": False,
                                       "requested_models": [slug],
                                       "excluded_by": ["quantization"]}},
        )
    if not prefs.get("order"):
        allowed.sort(key=list(endpoints).index)
    return allowed[0]
