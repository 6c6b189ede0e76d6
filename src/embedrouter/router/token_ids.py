"""What a token-id input means for a model: its own ids, an OpenAI encoding's ids, or an error.

LangChain's ``OpenAIEmbeddings`` and other tiktoken-based clients send cl100k ids whatever the
model; read as the model's own WordPiece ids they give a confident, meaningless vector. A model's
``token_ids`` setting says how to read them: ``cl100k``/``o200k`` decode the ids back to text (which
the model's own tokenizer then counts and embeds, as the LiteLLM proxy does), ``native`` keeps
them as the model's ids, ``reject`` refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence

from embedrouter import tokens
from embedrouter.catalog import ModelSpec
from embedrouter.errors import InvalidRequest
from embedrouter.types import TextInput, TokenInput

# Decoding runs a Python loop per id; past this many ids in a request it moves to a worker thread.
INLINE_DECODE_IDS = 20_000


def needs_decoding(spec: ModelSpec, inputs: Sequence[TextInput | TokenInput]) -> int:
    """How many token ids of ``inputs`` must be decoded to text for ``spec`` (0: none)."""
    if spec.token_ids in ("native", "reject"):
        return 0
    return sum(len(x.ids) for x in inputs if isinstance(x, TokenInput))


def translate(spec: ModelSpec, inputs: Sequence[TextInput | TokenInput]
              ) -> list[TextInput | TokenInput]:
    """Token-id inputs as the model must see them; 400 naming the input, the id and the setting."""
    mode = spec.token_ids
    if mode == "native" or not any(isinstance(x, TokenInput) for x in inputs):
        return list(inputs)
    if mode == "reject":
        first = next(i for i, x in enumerate(inputs) if isinstance(x, TokenInput))
        raise InvalidRequest(
            f"input[{first}]: model {spec.slug!r} does not accept token-id inputs "
            "(token_ids = \"reject\"); send the text instead",
            metadata={"field": f"input[{first}]", "token_ids": mode},
        )
    enc = tokens.encoding(mode)
    out: list[TextInput | TokenInput] = []
    for i, x in enumerate(inputs):
        if not isinstance(x, TokenInput):
            out.append(x)
            continue
        try:
            text = enc.decode(x.ids)
        except tokens.InvalidTokenId as exc:
            raise InvalidRequest(
                f"input[{i}]: token id {exc.token_id} is not a valid {mode} id (model "
                f"{spec.slug!r} reads token ids as {mode}, its token_ids setting; "
                f"valid ids are 0 to {enc.size - 1}, except unassigned ones)",
                metadata={"field": f"input[{i}]", "token_id": exc.token_id, "token_ids": mode},
            ) from None
        out.append(TextInput(text))
    return out
