"""The Apache Beam embedding pipeline: images in, feature shards out (:mod:`novelty.embed.shards`).

::

    files (ids in folder order)   Create | Reshuffle | ReadFile  --rows--> WriteToText (files.csv rows)
      or prepare's TFRecord shards  ReadAllFromTFRecord | ParseRecord
                                    | RunInference(KeyedModelHandler(VGG16Handler))  batches of batch_size
                                    | WriteShards                                     one shard per bundle

Every worker decodes with the project's own reader (:func:`novelty.images.decode.read_file`), so a bad
file gets the reason and files.csv row that ``novelty analyze`` gives it, and embeds with the same
:class:`novelty.embed.features.Extractor` (weights checked by sha256 against the driver's), so the
features are those of in-process embedding. Images whose features the store already holds are read
(for their hash and row) but not embedded. This module imports ``apache_beam``: import it lazily
(:mod:`novelty.embed.runners` does).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from novelty.embed.shards import SHARD_ROWS, write_shard
from novelty.errors import NoveltyError

METRICS_NAMESPACE = "novelty"
EMBEDDED_COUNTER = "images_embedded"


class VGG16Handler(ModelHandler[np.ndarray, dict, object]):
    """RunInference's model handler: uint8 ``(size, size, 3)`` images in, ``{layer: float32 (D,)}`` out.

    ``settings`` are the keyword arguments of :class:`novelty.embed.features.Extractor`; each worker
    builds its own, and refuses weights whose sha256 is not ``weights_sha256`` (the driver's), so
    every worker computes the features the store's cache key names. Batches hold ``batch_size``
    images (fewer at the end of a bundle)."""

    def __init__(self, settings: dict, weights_sha256: str, batch_size: int):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self.settings = dict(settings)
        self.weights_sha256 = weights_sha256
        self.batch_size = batch_size

    def load_model(self):
        from novelty.embed.features import Extractor

        extractor = Extractor(**self.settings)
        if extractor.weights.sha256 != self.weights_sha256:
            raise NoveltyError(f"a Beam worker resolved weights {self.settings.get('weights')!r} to sha256 "
                               f"{extractor.weights.sha256[:12]}, the driver to {self.weights_sha256[:12]}: "
                               "install the same weights on every worker")
        extractor.model  # noqa: B018 -- build the Keras model once per worker, not on the first batch
        return extractor

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args: dict | None = None
                      ) -> Iterable[dict]:
        features = next(model.embed_batches(np.stack(batch), batch_size=len(batch), progress=False))
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, EMBEDDED_COUNTER).inc(len(batch))
        return [{layer: values[i] for layer, values in features.items()} for i in range(len(batch))]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(image.nbytes for image in batch)

    def get_metrics_namespace(self) -> str:
        return f"{METRICS_NAMESPACE}_vgg16"


class ReadFile(beam.DoFn):
    """``(order, path as bytes)`` -> a files.csv row (tagged ``rows``, as JSON with ``order``) and, for a
    usable image whose key is not in ``cached``, ``(sha256, image)``."""

    def __init__(self, root: str, set_name: str, size: int, fit_mode: str, cached: frozenset[str]):
        self.root, self.set_name, self.size, self.fit_mode, self.cached = root, set_name, size, fit_mode, cached

    def process(self, element: tuple[int, bytes]):
        from novelty.images.decode import read_file
        from novelty.images.sets import file_row

        order, path = element
        item = read_file(Path(os.fsdecode(path)), Path(self.root), self.size, self.fit_mode)
        yield beam.pvalue.TaggedOutput("rows", json.dumps({"order": order, **file_row(self.set_name, item)}))
        if item.image is not None and item.sha256 not in self.cached:
            yield item.sha256, item.image


class ParseRecord(beam.DoFn):
    """A serialised ``tf.train.Example`` of ``novelty prepare`` -> ``(key, image)`` fitted to ``size``, for
    the ids of ``keys`` (id -> cache key) whose key is not in ``cached``."""

    def __init__(self, keys: dict[str, str], size: int, fit_mode: str, cached: frozenset[str]):
        self.keys, self.size, self.fit_mode, self.cached = keys, size, fit_mode, cached

    def setup(self):
        import tensorflow as tf

        self._example = tf.train.Example

    def process(self, record: bytes):
        from novelty.images.decode import fit

        feature = self._example.FromString(record).features.feature
        ident = feature["id"].bytes_list.value[0].decode("utf-8")
        key = self.keys.get(ident)
        if key is None or key in self.cached:
            return
        shape = [feature[name].int64_list.value[0] for name in ("height", "width", "channels")]
        image = np.frombuffer(feature["image"].bytes_list.value[0], np.uint8).reshape(shape)
        yield key, fit(image, self.size, self.fit_mode)


class WriteShards(beam.DoFn):
    """``(key, {layer: features})`` -> shards in ``folder``: one per bundle (or per ``SHARD_ROWS`` rows)."""

    def __init__(self, folder: str):
        self.folder = folder

    def start_bundle(self):
        self._keys, self._rows = [], []

    def process(self, element: tuple[str, dict]):
        key, features = element
        self._keys.append(key)
        self._rows.append(features)
        if len(self._keys) >= SHARD_ROWS:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if self._keys:
            layers = list(self._rows[0])
            write_shard(self.folder, self._keys, {layer: np.stack([row[layer] for row in self._rows])
                                                  for layer in layers})
        self._keys, self._rows = [], []


def build(pipeline: beam.Pipeline, source: dict, handler: VGG16Handler, shard_dir: str, rows_prefix: str) -> None:
    """Add the embedding to ``pipeline``. ``source`` is ``{"files": [(order, path bytes)], "root",
    "set_name"}`` for a folder or ``{"records": [shard paths], "keys": {id: key}}`` for prepared shards,
    both with ``size``, ``fit_mode`` and ``cached`` (keys not to embed again)."""
    size, fit_mode, cached = source["size"], source["fit_mode"], frozenset(source["cached"])
    if "files" in source:
        read = (pipeline
                | "Files" >> beam.Create(source["files"])
                | "Spread" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(ReadFile(source["root"], source["set_name"], size, fit_mode, cached)
                                       ).with_outputs("rows", main="images"))
        _ = read.rows | "Rows" >> beam.io.WriteToText(rows_prefix, file_name_suffix=".jsonl")
        images = read.images
    else:
        from apache_beam.io.tfrecordio import ReadAllFromTFRecord

        images = (pipeline
                  | "Shards" >> beam.Create(source["records"])
                  | "Records" >> ReadAllFromTFRecord()
                  | "Parse" >> beam.ParDo(ParseRecord(source["keys"], size, fit_mode, cached)))
    _ = (images
         | "Embed" >> RunInference(KeyedModelHandler(handler))
         | "Write" >> beam.ParDo(WriteShards(shard_dir)))


def pipeline_options(runner: str, pipeline_args: Sequence[str] = ()):
    """Beam's ``PipelineOptions`` for ``runner`` and ``pipeline_args`` (Beam's own flags, e.g.
    ``--direct_num_workers 2``), checked before any work: an unknown flag or a bad value is a one-line
    :class:`NoveltyError` (Beam would drop the one and print its whole usage for the other)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    # workers log at WARNING unless asked otherwise (a later flag wins): their INFO lines drown the output
    options = PipelineOptions([f"--runner={runner}", "--default_sdk_harness_log_level=WARNING", *pipeline_args])
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            unknown = set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    except SystemExit:
        lines = [line for line in usage.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else "unreadable"
        raise NoveltyError(f"invalid Beam pipeline option: {reason}") from None
    if unknown:
        raise NoveltyError(f"unknown Beam pipeline option: --{sorted(unknown)[0]} (see Beam's pipeline options "
                           "for the runner)")
    return options


def run(source: dict, handler: VGG16Handler, shard_dir: str, rows_prefix: str, options) -> int:
    """Run the pipeline to the end with ``options`` (:func:`pipeline_options`); returns how many images
    the workers embedded (Beam's counter)."""
    from apache_beam.metrics.metric import MetricsFilter

    pipeline = beam.Pipeline(options=options)
    build(pipeline, source, handler, shard_dir, rows_prefix)
    result = pipeline.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_name(EMBEDDED_COUNTER))
    counters = [c for c in query["counters"] if c.key.metric.namespace == METRICS_NAMESPACE]
    return int(sum((c.committed if c.committed is not None else c.attempted) or 0 for c in counters))
