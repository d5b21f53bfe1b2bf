"""novelty: what did your GAN really learn?

Importing this package is cheap: TensorFlow, Keras and pandas load lazily. The Python API
(:func:`analyze`, :func:`open_run`, :class:`Run`, from :mod:`novelty.api`) loads on first use.
"""

from novelty.errors import NoveltyError

__version__ = "0.1.0"
__all__ = ["NoveltyError", "Run", "__version__", "analyze", "open_run"]
_API = ("Run", "analyze", "open_run")


def __getattr__(name: str):
    """Load the API exports (and pandas with them) on first access."""
    if name in _API:
        from novelty import api

        return getattr(api, name)
    raise AttributeError(f"module 'novelty' has no attribute {name!r}")
