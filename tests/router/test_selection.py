"""Endpoint choice from `provider` preferences: tables of cases, no sockets."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.errors import InvalidRequest, NotFound
from embedrouter.router.selection import Health, matches, plan, split_variant

SLUG = "openai/text-embedding-3-small"


def ep(provider: str, price: str, **kw: object) -> EndpointSpec:
    display = kw.pop("display_name", provider.split("/")[0].title())
    return EndpointSpec(provider=provider, display_name=display, upstream_model="m",  # type: ignore[arg-type]
                        price_per_million=Decimal(price), **kw)  # type: ignore[arg-type]


A = ep("alpha", "1")
B = ep("beta", "2")
C = ep("gamma", "3", quantization="int8", data_collection="deny", zdr=True,
       supported_params=frozenset({"dimensions"}))
PRIORITY = ep("alpha/priority", "5", tier="priority")
FLEX = ep("alpha/flex", "0.5", tier="flex")
REGION = ep("beta/eu", "2.5", display_name="Beta EU")
ALL = [A, B, C, PRIORITY, FLEX, REGION]


def names(prefs: dict | None, *, endpoints: list[EndpointSpec] | None = None,
          **kw: object) -> list[str]:
    result = plan(endpoints or [A, B, C], prefs, slug=SLUG, rng=random.Random(0), **kw)  # type: ignore[arg-type]
    return [e.provider for e in result.attempts]


@pytest.mark.parametrize(("prefs", "expected"), [
    ({"order": ["gamma", "alpha"]}, ["gamma", "alpha", "beta"]),
    ({"order": ["gamma", "alpha"], "allow_fallbacks": False}, ["gamma", "alpha"]),
    ({"order": ["Gamma"]}, ["gamma", "alpha", "beta"]),  # display names match, any case
    ({"sort": "price"}, ["alpha", "beta", "gamma"]),
    ({"sort": {"by": "price", "partition": "none"}}, ["alpha", "beta", "gamma"]),
    ({"only": ["beta", "gamma"], "sort": "price"}, ["beta", "gamma"]),
    ({"ignore": ["alpha"], "sort": "price"}, ["beta", "gamma"]),
    ({"quantizations": ["int8"]}, ["gamma"]),
    ({"data_collection": "deny"}, ["gamma"]),
    ({"zdr": True}, ["gamma"]),
    ({"max_price": {"prompt": "2"}, "sort": "price"}, ["alpha", "beta"]),
    ({"max_price": {"prompt": 1}}, ["alpha"]),
    ({"sort": "price", "allow_fallbacks": False}, ["alpha"]),
])
def test_preferences(prefs: dict, expected: list[str]) -> None:
    assert names(prefs) == expected


def test_require_parameters_keeps_endpoints_that_support_every_param_sent() -> None:
    assert names({"require_parameters": True}, params=frozenset({"dimensions"})) == ["gamma"]
    assert len(names({"require_parameters": True})) == 3  # nothing sent, nothing required


@pytest.mark.parametrize(("prefs", "excluded_by"), [
    ({"only": ["nobody"]}, ["allowed_providers"]),
    ({"max_price": {"prompt": "0.5"}}, ["max_price"]),
    ({"zdr": True, "quantizations": ["fp32"]}, ["quantization"]),
    ({"ignore": ["gamma"], "zdr": True}, ["allowed_providers", "data_policy:zdr"]),
])
def test_nothing_left_is_404_constraint_filtered(prefs: dict, excluded_by: list[str]) -> None:
    with pytest.raises(NotFound) as info:
        plan([A, B, C], prefs, slug=SLUG)
    avail = info.value.metadata["availability"]  # type: ignore[index]
    assert avail["code"] == "constraint_filtered" and avail["excluded_by"] == excluded_by


def test_bad_max_price_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="max_price"):
        plan([A], {"max_price": {"prompt": "cheap"}}, slug=SLUG)


def test_base_slug_matches_regions_not_service_tiers() -> None:
    assert matches(REGION, "beta") and matches(REGION, "beta/eu")
    assert not matches(PRIORITY, "alpha") and matches(PRIORITY, "alpha/priority")


def test_tiers_need_their_suffix_or_an_explicit_slug() -> None:
    assert "alpha/priority" not in names(None, endpoints=ALL)
    assert "alpha/flex" not in names(None, endpoints=ALL)
    assert names(None, endpoints=ALL, variant="nitro")[-1] != "alpha/flex"
    assert "alpha/priority" in names(None, endpoints=ALL, variant="nitro")
    assert names(None, endpoints=ALL, variant="floor")[0] == "alpha/flex"  # :floor sorts by price
    assert names({"order": ["alpha/priority"]}, endpoints=ALL)[0] == "alpha/priority"


def test_suffixes() -> None:
    assert split_variant("a/b:nitro") == ("a/b", "nitro")
    assert split_variant("a/b:floor") == ("a/b", "floor")
    assert split_variant("a/b:free") == ("a/b:free", None)
    assert split_variant("a/b") == ("a/b", None)


def test_nitro_and_sort_throughput_use_the_measured_p50() -> None:
    health = {"alpha": Health(throughput={"p50": 100}), "beta": Health(throughput={"p50": 900}),
              "gamma": Health(throughput={"p50": 500})}
    assert names(None, variant="nitro", health=health) == ["beta", "gamma", "alpha"]
    assert names({"sort": "throughput"}, health=health) == ["beta", "gamma", "alpha"]
    lat = {"alpha": Health(latency={"p50": 0.9}), "gamma": Health(latency={"p50": 0.1})}
    # No data sorts last.
    assert names({"sort": "latency"}, health=lat) == ["gamma", "alpha", "beta"]


def test_preferred_bounds_move_endpoints_back_never_out() -> None:
    health = {"alpha": Health(throughput={"p50": 10}, latency={"p50": 2.0}),
              "beta": Health(throughput={"p50": 500}, latency={"p50": 0.2})}
    assert names({"sort": "price", "preferred_min_throughput": 100}, health=health) == [
        "beta", "gamma", "alpha"]
    assert names({"sort": "price", "preferred_max_latency": {"p50": 1, "p90": None}},
                 health=health) == ["beta", "gamma", "alpha"]
    assert names({"sort": "price", "min_throughput": 100}, health=health)[-1] == "alpha"


def test_default_draws_by_inverse_square_price_among_the_stable() -> None:
    # The docs' example: A $1, B $2 (recent outage), C $3 -> A 9x as likely first as C; B last.
    health = {"beta": Health(last_failure=95.0)}
    firsts: Counter[str] = Counter()
    rng = random.Random(7)
    for _ in range(4000):
        order = plan([A, B, ep("gamma", "3")], None, slug=SLUG, health=health, now=100.0,
                     rng=rng).attempts
        firsts[order[0].provider] += 1
        assert order[-1].provider == "beta"
    assert firsts["beta"] == 0
    assert 7.5 < firsts["alpha"] / firsts["gamma"] < 11  # expected 9
    # After 30 s the outage no longer counts.
    later = plan([A, B], None, slug=SLUG, health=health, now=126.0, rng=random.Random(1))
    assert {e.provider for e in later.attempts} == {"alpha", "beta"}


def test_free_endpoints_win_the_draw() -> None:
    free = ep("zero", "0")
    for seed in range(20):
        assert plan([A, free, B], None, slug=SLUG, rng=random.Random(seed)).attempts[0] == free


def test_rate_limited_endpoints_rest_until_their_hint() -> None:
    health = {"alpha": Health(rate_limited_until=110.0)}
    got = plan([A, B], {"sort": "price"}, slug=SLUG, health=health, now=100.0)
    assert [e.provider for e in got.attempts] == ["beta"]
    assert got.resting == ((A, 110.0),)
    assert plan([A, B], {"sort": "price"}, slug=SLUG, health=health, now=111.0).resting == ()
