"""Local inference engine: a BERT sentence-transformers model served through ONNX Runtime.

``LocalModel`` loads a model directory (building and caching its ONNX graph on first use) and
offers blocking tokenize/forward/embed; ``Batcher`` shares one model between concurrent asyncio
requests by batching their sequences in a single background worker.
"""

from embedrouter.engine.batcher import Batcher
from embedrouter.engine.errors import ModelLoadError
from embedrouter.engine.model import LocalModel
from embedrouter.engine.model_dir import default_model_dir

__all__ = ["Batcher", "LocalModel", "ModelLoadError", "default_model_dir"]
