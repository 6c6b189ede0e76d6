"""Models and their endpoints: the facts the router and the API read, declared in config."""

from embedrouter.catalog.models import Catalog, ModelSpec, build_catalog

__all__ = ["Catalog", "ModelSpec", "build_catalog"]
