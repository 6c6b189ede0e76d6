"""Operations on result vectors shared by the local and remote paths."""

from __future__ import annotations

import numpy as np


def shorten(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """Matryoshka truncation: keep the leading dimensions, then restore unit length."""
    cut = np.ascontiguousarray(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    cut /= norms
    return cut
