"""novelty: what did your GAN really learn?

Importing this package is cheap: TensorFlow and Keras load lazily inside the stages that need them.
"""

from novelty.errors import NoveltyError

__version__ = "0.1.0"
__all__ = ["NoveltyError", "__version__"]
