"""The one exception type the library raises for bad input; the CLI and the web app translate it."""


class NoveltyError(Exception):
    """A problem with the user's input (a path, a flag, a file) that deserves a one-line message."""
