"""The web demo: a FastAPI app over one run folder, with a static frontend (no build step).

``create_app(Settings(run=...))`` assembles one router per resource (samples, training, summary,
images, query) and mounts the static files last. The app only reads what the run wrote; it calls the
library for an uploaded query, loading the feature extractor the first time one arrives.
"""

from webdemo.app import create_app
from webdemo.settings import Settings

__all__ = ["Settings", "create_app"]
