"""The ``novelty`` command line: :mod:`~novelty.cli.commands` (one function per command, and the
printing of its results; the curation commands in :mod:`~novelty.cli.curation`, ``train``'s flags in
:mod:`~novelty.cli.training`) over :mod:`~novelty.cli.options` (shared flags and range-checked types).

Importing it never imports TensorFlow: the stages import Keras inside the functions that need it.
"""

from novelty.cli.commands import main
from novelty.cli.options import bounded

__all__ = ["bounded", "main"]
