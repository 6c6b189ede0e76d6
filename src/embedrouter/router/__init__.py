from embedrouter.router.pipeline import Router

__all__ = ["Router"]
