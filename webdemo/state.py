"""What the app holds in memory for one run: the run's records, indexed once, and cached responses."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from functools import cached_property, lru_cache
from typing import Any

from fastapi import Request

from novelty.run.browse import RunView
from novelty.run.trainingview import training_counts, view_records
from webdemo.errors import ApiError, not_found
from webdemo.settings import Settings

MAX_CACHED_LISTS = 40_000  # serialised neighbour lists kept in memory (about 5 KB each)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class AppState:
    """The run (read once at start-up) and the query engine (built on the first query)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.view = RunView.load(settings.run)
        self.samples = self.view.sample_list()
        self.sample_index = {record["id"]: i for i, record in enumerate(self.samples)}
        self._query_lock = threading.Lock()
        self._query_engine = None
        self._translator = None
        self._training_views: dict[tuple[str, str], list[dict]] = {}
        lists = len(self.samples) * len(self.view.layers)
        self.neighbour_bytes = lru_cache(maxsize=max(4096, min(2 * lists, MAX_CACHED_LISTS)))(self._neighbour_bytes)

    def warm(self) -> threading.Thread:
        """Serialise every default neighbour list in a background thread, so that first clicks hit
        the cache too; the server answers requests meanwhile."""
        def run() -> None:
            for record in self.samples[: MAX_CACHED_LISTS // max(1, len(self.view.layers))]:
                for layer in self.view.layers:
                    self.neighbour_bytes(record["id"], layer, self.view.k)
                time.sleep(0)  # let request handlers have the GIL between samples

        thread = threading.Thread(target=run, name="webdemo-warm", daemon=True)
        thread.start()
        return thread

    @cached_property
    def training_rows(self) -> list[dict]:
        """Built on the first request that needs them, not at start-up."""
        return self.view.training_rows()

    @cached_property
    def training_by_id(self) -> dict[str, dict]:
        return {row["id"]: row for row in self.training_rows}

    @cached_property
    def training_counts(self) -> dict[str, int]:
        """:func:`novelty.run.trainingview.training_counts` of the whole set, counted once."""
        return training_counts(self.training_rows)

    @cached_property
    def training_flags(self) -> list[str]:
        """The pixel flags any training image carries."""
        return sorted({flag for row in self.training_rows for flag in row["flags"]})

    def training_view(self, view: str, sort: str) -> list[dict]:
        """:func:`novelty.run.trainingview.view_records`, filtered and sorted once per (view, sort) pair: a page of a million-image set is then a slice, not a
        pass over every record (about a second each at 1M) on the server's event loop."""
        key = (view, sort)
        if key not in self._training_views:
            self._training_views[key] = view_records(self.training_rows, view, sort)
        return self._training_views[key]

    @cached_property
    def sample_list_bytes(self) -> bytes:
        """The whole gallery list in id order, the gallery's one request."""
        return dumps({"total": len(self.samples), "items": self.samples, "verdicts": self.verdict_counts,
                      "layers": self.view.layers})

    @cached_property
    def verdict_counts(self) -> dict[str, int]:
        """How many samples have each verdict (over the whole run, whatever a list request filters)."""
        return dict(Counter(record["verdict"] for record in self.samples if record["verdict"]))

    @cached_property
    def summary_bytes(self) -> bytes:
        return dumps(self.view.summary())

    def check_sample(self, sample_id: str) -> int:
        index = self.sample_index.get(sample_id)
        if index is None:
            raise not_found("sample id", sample_id)
        return index

    def check_layer(self, layer: str) -> str:
        if layer not in self.view.layers:
            raise ApiError(422, f"unknown layer {layer!r}; expected one of: {', '.join(self.view.layers)}",
                           "invalid_request")
        return layer

    def check_k(self, k: int | None) -> int:
        if k is None:
            return self.view.k
        if not 1 <= k <= self.view.k:
            raise ApiError(422, f"k must be between 1 and {self.view.k} (this run's k), received {k}",
                           "invalid_request")
        return k

    def neighbour_request(self, sample_id: str, layer: str | None, k: str | None) -> bytes:
        """The serialised top-``k`` list of one neighbour request, from its raw path and query values;
        an ApiError when they are not valid. The one set of checks, used by the route and by the fast
        path (which hands anything invalid on to the route, so that errors keep one shape)."""
        if layer is None:
            raise ApiError(422, "missing query parameter 'layer'; expected one of: " + ", ".join(self.view.layers),
                           "invalid_request")
        count = None
        if k is not None:
            if not k.isascii() or not k.isdigit() or len(k) > 6:
                raise ApiError(422, f"k must be a whole number, received {k[:50]!r}", "invalid_request")
            count = int(k)
        self.check_sample(sample_id)
        return self.neighbour_bytes(sample_id, self.check_layer(layer), self.check_k(count))

    def _neighbour_bytes(self, sample_id: str, layer: str, k: int) -> bytes:
        return dumps(self.view.neighbour_list(sample_id, layer, k))

    def set_query_index(self, index) -> None:
        """Use ``index`` (a :class:`novelty.search.query.QueryIndex`, e.g. with a test extractor) for queries."""
        with self._query_lock:
            self._query_engine = index

    def query_engine(self):
        """The run's query index, built once; its extractor loads on the first search."""
        with self._query_lock:
            if self._query_engine is None:
                from novelty.search.query import QueryIndex

                self._query_engine = QueryIndex(self.view.root)
            return self._query_engine


    def translator(self):
        """The run's pix2pix generator (:class:`novelty.gan.generate.ImageTranslator`), loaded once from the
        checkpoint ``run.json`` records; NoveltyError when the run is not conditional or it cannot load."""
        from novelty.errors import NoveltyError
        from novelty.gan.generate import ImageTranslator

        run = self.view.run
        with self._query_lock:
            if self._translator is None:
                if not run.get("conditional") or not run.get("checkpoint"):
                    raise NoveltyError("this run records no pix2pix checkpoint: run `novelty analyze --checkpoint "
                                       "P2P --inputs DIR` to judge (and serve) a conditional generator")
                self._translator = ImageTranslator(run["checkpoint"], run.get("fit") or "crop")
            return self._translator


def app_state(request: Request) -> AppState:
    return request.app.state.novelty
