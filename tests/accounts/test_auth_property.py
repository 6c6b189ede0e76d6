"""Property: no header value makes ``authenticate`` raise anything but AuthenticationFailed,
and only the exact key ever succeeds."""

from __future__ import annotations

import itertools
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedrouter.accounts import KEY_PREFIX, KeyService
from embedrouter.errors import AuthenticationFailed

HEX = "0123456789abcdef"

# Mostly near-misses of a real header, since fully random text is rejected at the first check.
headers = st.one_of(
    st.none(),
    st.text(),
    st.text(alphabet=string.printable),
    # Lone surrogates and every other category: ASGI servers hand us latin-1 text, but the
    # service must not depend on that.
    st.text(alphabet=st.characters(exclude_categories=())),
    st.builds(lambda s, t: f"{s} {t}", st.sampled_from(["Bearer", "bearer", "Basic", ""]),
              st.text()),
    st.builds(lambda t: f"Bearer {KEY_PREFIX}{t}", st.text(alphabet=HEX + "G \x00é", max_size=70)),
    st.builds(lambda t: f"Bearer {KEY_PREFIX}{t}", st.text(alphabet=HEX, min_size=64,
                                                            max_size=64)),
    st.builds(lambda t: f"Bearer {KEY_PREFIX}{t}",
              st.text(alphabet=st.characters(exclude_categories=()), min_size=64, max_size=64)),
    # Hex with surrogates and control characters mixed in: key-shaped, but not encodable.
    st.builds(lambda t: f"Bearer {KEY_PREFIX}{t}",
              st.text(alphabet=st.one_of(st.sampled_from(HEX),
                                         st.characters(categories=["Cs", "Cc"])),
                      min_size=64, max_size=64)),
)


# The store fixture is deliberately shared by all examples: the property only reads.
# database=None: no .hypothesis folder left in the repository.
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=headers)
async def test_random_headers_only_ever_fail_authentication(keys: KeyService,
                                                            header: str | None) -> None:
    try:
        record = await keys.authenticate(header)
    except AuthenticationFailed as exc:
        assert exc.message  # every failure explains itself
    else:  # only possible if hypothesis guessed a 256-bit key
        raise AssertionError(f"authenticated a random header as {record.display}")


async def test_the_real_key_in_any_spacing_and_scheme_case(keys: KeyService) -> None:
    key, record = await keys.create("demo")
    for scheme, left, mid, right in itertools.product(
            ["Bearer", "bearer", "BEARER", "bEARER"], ["", " ", "\t"], [" ", "   ", "\t"],
            ["", " ", "\r\n"]):
        assert await keys.authenticate(f"{left}{scheme}{mid}{key}{right}") == record
