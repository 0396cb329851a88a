"""A data marketplace that values LLM training data (LinFiK / ALinFiK) and pays providers.

The domain core: no Prefect import here or below (tests/test_layers.py enforces it).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
