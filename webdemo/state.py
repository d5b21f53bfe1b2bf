"""What the app holds in memory for one run: the run's records, indexed once, and cached responses."""

from __future__ import annotations

import json
import threading
from functools import cached_property, lru_cache
from typing import Any

from fastapi import Request

from novelty.browse import RunView
from webdemo.errors import ApiError, not_found
from webdemo.settings import Settings


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
        self.neighbour_bytes = lru_cache(maxsize=16384)(self._neighbour_bytes)

    @cached_property
    def training_rows(self) -> list[dict]:
        """Built on the first request that needs them, not at start-up."""
        return self.view.training_rows()

    @cached_property
    def summary(self) -> dict:
        return self.view.summary()

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

    def _neighbour_bytes(self, sample_id: str, layer: str, k: int) -> bytes:
        return dumps(self.view.neighbour_list(sample_id, layer, k))

    def set_query_index(self, index) -> None:
        """Use ``index`` (a :class:`novelty.query.QueryIndex`, e.g. with a test extractor) for queries."""
        with self._query_lock:
            self._query_engine = index

    def query_engine(self):
        """The run's query index, built once; its extractor loads on the first search."""
        with self._query_lock:
            if self._query_engine is None:
                from novelty.query import QueryIndex

                self._query_engine = QueryIndex(self.view.root)
            return self._query_engine


def app_state(request: Request) -> AppState:
    return request.app.state.novelty
