"""tiktoken without the network: its cache filled from the rank files embedrouter ships.

tiktoken downloads ``<name>.tiktoken`` on first use and caches it under the SHA-1 of its URL in
``TIKTOKEN_CACHE_DIR``; writing our copies there first makes every tiktoken user offline.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path

URL = "https://openaipublic.blob.core.windows.net/encodings/{name}_base.tiktoken"


def fill_cache(directory: Path) -> Path:
    """Write cl100k_base and o200k_base into ``directory`` as tiktoken's cache expects them."""
    directory.mkdir(parents=True, exist_ok=True)
    data = resources.files("embedrouter.tokens").joinpath("data")
    for name in ("cl100k", "o200k"):
        target = directory / hashlib.sha1(URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            target.write_bytes(gzip.decompress(
                data.joinpath(f"{name}_base.tiktoken.gz").read_bytes()))
    return directory
