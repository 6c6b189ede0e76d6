"""The HTTP server layer under the ASGI app: connection guards and process limits."""

from embedrouter.httpserver.limits import effective_max_connections, raise_open_file_limit
from embedrouter.httpserver.protocol import ConnectionLimits, protocol_class

__all__ = ["ConnectionLimits", "effective_max_connections", "protocol_class",
           "raise_open_file_limit"]
