"""embedrouter: a self-hostable embeddings router that speaks OpenRouter's embeddings API."""

__version__ = "0.1.0"
