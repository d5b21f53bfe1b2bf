"""``python -m novelty.cli``: the same as the ``novelty`` command."""

from novelty.cli import main

main()
