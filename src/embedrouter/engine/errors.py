"""Errors raised while loading a local model.

Loading happens at server start, not inside a request, so this is not part of the API error
tree: a bad model directory is an operator problem and should fail the start loudly.
"""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete, corrupted or describes an unsupported model."""
