"""``novelty analyze --inputs``: judging the outputs of a conditional (pix2pix) generator. Orchestration only.

``PAIRS`` (a pair folder or prepared pair shards, :mod:`novelty.images.pairs`) gives the targets. A pair
is *matched* when an input file has its name (the path without extension: ``A/x.jpg``, input
``x.png`` and output ``x.png`` all match pair ``x``); its target is that output's *truth*. Steps:

1. the outputs: ``generate --inputs`` with ``checkpoint`` into ``RUN/generated`` (:func:`novelty.gan.generate.translate`),
   or ``generated`` made elsewhere, named after the inputs;
2. the targets are written as PNGs: ``RUN/targets/`` the TRAINING targets (every pair but those the
   checkpoint held out, ``holdout.json``, and the matched ones: an output's own truth never counts
   against it), ``RUN/truth/`` the matched pairs' targets;
3. :func:`novelty.analysis.analyze` with ``RUN/targets`` as the training set (features, top-k
   neighbours, both layers), the truths embedded as the feature set ``truth``;
4. the verdicts (:func:`novelty.judge.verdicts.judge_run`), which read ``run.json`` "conditional" and
   apply :mod:`novelty.judge.conditional`.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.analysis import AnalyzeOptions, AnalyzeResult, analyze, extractor_for
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json
from novelty.images.sets import scan_set
from novelty.run.folder import RunFolder

TARGETS_DIR, TRUTH_DIR = "targets", "truth"


def pair_key(ident: str) -> str:
    """What matches an input, an output and a pair: the path without its extension."""
    return Path(ident).with_suffix("").as_posix()


def pair_targets(pairs: str | os.PathLike, size: int, fit_mode: str, direction: str,
                 progress: bool) -> tuple[list[str], np.ndarray]:
    """``(pair ids, targets (N, size, size, 3) uint8)`` of a pair folder or prepared pair shards."""
    from novelty.images.pairs import detect_layout, load_pairs
    from novelty.images.pipeline import is_shard_folder

    pairs = Path(pairs)
    if is_shard_folder(pairs):
        from novelty.images.records import load_prepared, read_manifest

        if not read_manifest(pairs).get("pairs"):
            raise NoveltyError(f"{pairs} holds single images, not pairs: prepare it with `novelty prepare --pairs`")
        loaded = load_prepared(pairs, size, fit_mode)
        return [str(entry["id"]) for entry in loaded.entries], loaded.images
    if not pairs.is_dir():
        raise NoveltyError(f"pair folder not found: {pairs}")
    loaded = load_pairs(pairs, detect_layout(pairs), size, fit_mode, direction, progress=progress)
    return loaded.ids, loaded.targets


def checkpoint_holdout(checkpoint: str | os.PathLike | None) -> list[str] | None:
    """The pair ids the training folder of ``checkpoint`` held out (None: no ``holdout.json`` found)."""
    from novelty.gan.pix2pix_family import HOLDOUT_FILE, read_holdout

    if checkpoint is None:
        return None
    folder = Path(checkpoint).resolve()
    for place in (folder, folder.parent, folder.parent.parent):
        if (place / HOLDOUT_FILE).is_file():
            return read_holdout(place)
    return None


def _write_set(folder: Path, names: Sequence[str], images: np.ndarray) -> None:
    """The target PNGs under ``folder`` (ours, inside the run); refused when it holds other files."""
    from novelty.images.decode import find_images, image_id, save_png

    present = {image_id(path, folder) for path in find_images(folder)} if folder.is_dir() else set()
    if present - set(names):
        raise NoveltyError(f"{folder} holds files of another pair set ({sorted(present - set(names))[0]}); "
                           "use a new --out")
    for name, image in zip(names, images, strict=True):
        save_png(image, folder / name)


def _outputs(run: RunFolder, inputs: Path, checkpoint, generated, fit_mode: str, progress: bool
             ) -> tuple[Path, dict[str, str]]:
    """The folder of outputs and ``{output id: input id}``."""
    from novelty.gan.generate import samples_folder, translate
    from novelty.images.decode import find_images, image_id

    if (generated is None) == (checkpoint is None):
        raise NoveltyError("give exactly one of --generated DIR or --checkpoint PATH")
    if not Path(inputs).is_dir():
        raise NoveltyError(f"input folder not found: {inputs}")
    if checkpoint is not None:
        manifest = translate(checkpoint, inputs, run.generated_dir, fit_mode=fit_mode, progress=progress)
        return samples_folder(run.generated_dir), {name: ident for ident, name in manifest["files"].items()}
    folder = samples_folder(generated)
    if not folder.is_dir():
        raise NoveltyError(f"generated image folder not found: {generated}")
    by_key = {pair_key(image_id(p, inputs)): image_id(p, inputs) for p in find_images(inputs)}
    outputs = [image_id(p, folder) for p in find_images(folder)]
    return folder, {out: by_key[pair_key(out)] for out in outputs if pair_key(out) in by_key}


def analyze_conditional(pairs: str | os.PathLike, out: str | os.PathLike, *, inputs: str | os.PathLike,
                        checkpoint: str | os.PathLike | None = None, generated: str | os.PathLike | None = None,
                        direction: str = defaults.PAIR_DIRECTION, seed: int = defaults.SEED,
                        options: AnalyzeOptions | None = None, extractor=None) -> AnalyzeResult:
    """Judge a pix2pix generator's outputs for ``inputs`` (made by ``checkpoint``, or given as ``generated``)
    against the training targets of ``pairs`` and each output's own truth; write the run folder ``out``."""
    from novelty.embed.featurestore import FeatureStore
    from novelty.gan.generate import output_names
    from novelty.judge.conditional import TRUTH_SET

    run, inputs, options = RunFolder(out), Path(inputs), options or AnalyzeOptions()
    extractor = extractor_for(options, seed, extractor)
    outputs_dir, output_inputs = _outputs(run, inputs, checkpoint, generated, options.fit_mode, options.progress)
    held = checkpoint_holdout(checkpoint if checkpoint is not None else _generated_checkpoint(generated))
    ids, targets = pair_targets(pairs, options.input_size,
                                options.fit_mode, direction, options.progress)
    keys = [pair_key(i) for i in ids]
    counts = Counter(keys)  # a name two pairs share matches neither
    row = {key: j for j, key in enumerate(keys) if counts[key] == 1}
    matched = {out_id: row[pair_key(in_id)] for out_id, in_id in output_inputs.items() if pair_key(in_id) in row}
    truths = sorted(set(matched.values()))
    held_set = set(held or [])
    excluded = set(truths) | {j for j, ident in enumerate(ids) if ident in held_set}
    train_rows = [j for j in range(len(ids)) if j not in excluded]
    if len(train_rows) < 4:
        raise NoveltyError(f"only {len(train_rows)} training targets left in {pairs} once the held-out and matched "
                           "pairs are set aside; verdicts need at least 4")
    names = output_names(ids)
    _write_set(run.root / TARGETS_DIR, [names[j] for j in train_rows], targets[train_rows])
    _write_set(run.root / TRUTH_DIR, [names[j] for j in truths], targets[truths])
    result = analyze(run.root / TARGETS_DIR, run.root, generated=outputs_dir, seed=seed,
                     options=dataclasses.replace(options, verdicts=False), extractor=extractor)
    if truths:
        truth_set = scan_set(TRUTH_SET, run.root / TRUTH_DIR, options.input_size, options.fit_mode, options.progress)
        FeatureStore(run.features_dir, options.feature_dtype).update(
            TRUTH_SET, truth_set.ids, truth_set.sha256, truth_set.images, extractor, options.batch_size,
            options.progress)
    manifest = read_json(run.run_json)
    manifest["checkpoint"] = str(Path(checkpoint).resolve()) if checkpoint is not None else None
    manifest["conditional"] = {
        "pairs": str(Path(pairs).resolve()), "direction": direction, "inputs_dir": str(inputs.resolve()),
        "truth_dir": str((run.root / TRUTH_DIR).resolve()), "heldout_pairs": None if held is None else len(held),
        "inputs": output_inputs, "truth": {o: names[j] for o, j in matched.items()},
        "truth_split": {names[j]: ("" if held is None else "heldout" if ids[j] in held_set else "trained")
                        for j in truths}}
    write_json(run.run_json, manifest)
    if not matched:
        result.warnings.append(f"no input in {inputs} matches a pair of {pairs} by name: no output has a ground "
                               "truth, so the plain (unconditional) verdict applies")
    if options.verdicts:
        from novelty.analysis import judge

        result.verdicts = judge(run, options)
    return result


def _generated_checkpoint(generated: str | os.PathLike | None) -> str | None:
    """The checkpoint a ``novelty generate --inputs`` folder records (its ``generated.json``)."""
    from novelty.gan.generate import MANIFEST_FILE

    if generated is None or not (Path(generated) / MANIFEST_FILE).is_file():
        return None
    try:
        found = read_json(Path(generated) / MANIFEST_FILE).get("checkpoint")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) and Path(found).is_dir() else None
