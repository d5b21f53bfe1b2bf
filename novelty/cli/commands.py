"""The ``novelty`` command line. Each command parses flags, calls the library, prints where results went.

Errors are translated here once: a :class:`~novelty.errors.NoveltyError` from any stage becomes a
one-line ``Error: ...`` on stderr with exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from novelty import __version__, analysis, defaults
from novelty.cli.curation import curate, more_like_command
from novelty.cli.options import (
    ALIGN_OPTION,
    BATCH_SIZE_OPTION,
    BLOCK1_REDUCE_OPTION,
    DIRECTION,
    EMBEDDING_OPTIONS,
    FIT,
    FPR_OPTION,
    HOLDOUT_OPTION,
    INDEX_OPTION,
    INPUT_SIZE_OPTION,
    LAYERS_OPTION,
    MIRROR_OPTION,
    PREPROCESS_OPTION,
    SEED,
    TRAIN_SIZE,
    WEIGHTS_OPTION,
    bounded,
    given_only_with,
)
from novelty.cli.training import (
    DCGAN_ONLY,
    PIX2PIX_ONLY,
    PIX2PIX_OPTIONS,
    TRAIN_OPTIONS,
    resume_defaults,
    train_dcgan,
    train_pix2pix,
)
from novelty.embed import runners
from novelty.errors import NoveltyError
from novelty.gan import generate as gan_generate
from novelty.images import records
from novelty.images.pairs import PAIR_LAYOUTS, prepare_pairs
from novelty.judge import validate as judge_validate

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off stderr


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NoveltyError as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="novelty")
def main() -> None:
    """What did your GAN really learn? Train, generate, find nearest training images, judge, curate."""


@main.command()
@click.argument("images", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for the shards, manifest.json and skipped.csv (replaces an earlier prepare).")
@TRAIN_SIZE
@FIT
@click.option("--shard-size", type=bounded("shard_size"), default=defaults.SHARD_SIZE,
              help="Images per TFRecord shard.")
@click.option("--pairs", type=click.Choice(["none", *PAIR_LAYOUTS]), default="none",
              help="Paired images for pix2pix: side-by-side A|B files, or folders A/ and B/ matched by file name.")
@DIRECTION
def prepare(images: Path, out: Path, size: int, fit_mode: str, shard_size: int, pairs: str, direction: str) -> None:
    """Decode an image folder (or a folder of pairs) once into TFRecord shards that `novelty train` streams."""
    if pairs == "none":
        given_only_with(("direction",), "--pairs side-by-side or --pairs folders")
        result = records.prepare(images, out, size, fit_mode, shard_size)
    else:
        result = prepare_pairs(images, out, pairs, size, fit_mode, direction, shard_size)
    click.echo(result.summary())


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@TRAIN_OPTIONS
@PIX2PIX_OPTIONS
@WEIGHTS_OPTION
@SEED
def train(data: Path, model: str, **settings) -> None:
    """Train a DCGAN (or with --model pix2pix, an image-to-image pix2pix) on DATA: an image folder (a pair
    folder), or a folder written by `novelty prepare` (with --pairs for pix2pix)."""
    model, settings, taken = resume_defaults(settings["out"], model, settings)
    if taken:
        click.echo(f"{settings['out']} holds a run: the flags left out take its saved values ({', '.join(taken)})",
                   err=True)
    given_only_with(DCGAN_ONLY if model == "pix2pix" else PIX2PIX_ONLY, f"--model {'dcgan' if model == 'pix2pix' else 'pix2pix'}")
    (train_pix2pix if model == "pix2pix" else train_dcgan)(data, **settings)


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A checkpoint folder or a training folder (its latest checkpoint).")
@click.option("--n", "n", type=bounded("n_samples"), default=defaults.N_SAMPLES, help="Number of samples.")
@SEED
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="pix2pix: a folder of input images; one output each, named after it.")
@FIT
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
def generate(checkpoint: Path, n: int, seed: int, inputs: Path | None, fit_mode: str, out: Path) -> None:
    """Generate N seeded PNG samples and a grid from a DCGAN checkpoint, or translate --inputs with a pix2pix one."""
    if inputs is None:
        given_only_with(("fit_mode",), "--inputs")
    else:
        given_only_with(("n", "seed"), "a DCGAN checkpoint (without --inputs)")
        manifest = gan_generate.translate(checkpoint, inputs, out, fit_mode=fit_mode)
        skipped = f"; {manifest['skipped']} inputs skipped, reasons in {out / records.SKIPPED_FILE}" \
            if manifest["skipped"] else ""
        click.echo(f"Wrote {len(manifest['files'])} outputs to {out / gan_generate.SAMPLES_DIR} and a grid "
                   f"(input | output) to {out / gan_generate.GRID_FILE}{skipped}")
        return
    gan_generate.generate(checkpoint, out, n=n, seed=seed)
    click.echo(f"Wrote {n} samples to {out / gan_generate.SAMPLES_DIR} and a grid to {out / gan_generate.GRID_FILE}")


@main.command()
@click.option("--train", "train_dir", required=True, type=click.Path(path_type=Path),
              help="Folder of training images, or a folder written by `novelty prepare`.")
@click.option("--generated", "generated_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of generated images (or a `novelty generate` output folder).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Instead of --generated: sample --n images from this checkpoint into RUN/generated.")
@click.option("--n", "n", type=bounded("n_samples"), default=defaults.N_SAMPLES,
              help="Samples to generate with --checkpoint.")
@SEED
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run folder (a re-run reuses its cached features).")
@LAYERS_OPTION
@click.option("--k", "k", type=bounded("top_k"), default=defaults.TOP_K, help="Neighbours per sample.")
@EMBEDDING_OPTIONS
@BLOCK1_REDUCE_OPTION
@INDEX_OPTION
@HOLDOUT_OPTION
@FPR_OPTION
@MIRROR_OPTION
@ALIGN_OPTION
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="pix2pix: the input images; --train is then a pair folder or prepared pairs, and each "
                   "output is judged against the training targets and its own ground truth.")
@DIRECTION
def analyze(train_dir: Path, generated_dir: Path | None, checkpoint: Path | None, n: int, seed: int,
            out: Path, layers: tuple[str, ...], k: int, weights: str, preprocess: str, input_size: int,
            fit_mode: str, batch_size: int, feature_dtype: str, block1_reduce: str, index: str,
            holdout_fraction: float, fpr: float, mirror: bool, align: bool, inputs: Path | None,
            direction: str) -> None:
    """Find the nearest training images of every generated image; write the run folder OUT."""
    options = analysis.AnalyzeOptions(layers=layers, k=k, weights=weights, preprocess=preprocess,
                             input_size=input_size, batch_size=batch_size, fit_mode=fit_mode,
                             feature_dtype=feature_dtype, block1_reduce=block1_reduce, index=index,
                             holdout_fraction=holdout_fraction, fpr=fpr, mirror=mirror, align=align)
    if inputs is not None:
        from novelty.conditional import analyze_conditional

        given_only_with(("n",), "a DCGAN checkpoint (without --inputs)")
        result = analyze_conditional(train_dir, out, inputs=inputs, checkpoint=checkpoint, generated=generated_dir,
                                     direction=direction, seed=seed, options=options)
        _print_analysis(result, out, fpr)
        return
    given_only_with(("direction",), "--inputs")
    result = analysis.analyze(train_dir, out, generated=generated_dir, checkpoint=checkpoint, n=n, seed=seed,
                         options=options)
    _print_analysis(result, out, fpr)


def _print_analysis(result: analysis.AnalyzeResult, out: Path, fpr: float) -> None:
    """What `novelty analyze` found: counts, copies, outliers and warnings, then where the run folder is."""
    counts = result.counts
    click.echo(f"Compared {counts['generated']} generated with {counts['training']} training images "
               f"({counts['skipped']} files skipped, see {out / 'files.csv'}); "
               f"embedded {sum(result.embedded.values())} new images")
    if result.verdicts:
        copies = result.verdicts.get("copies") or {}
        if copies.get("n"):
            same = f", {copies['identical']} of them identical to a training image" if copies.get("identical") else ""
            click.echo(f"Copies: {copies['count']} of {copies['n']} samples flagged at a false positive rate of "
                       f"{fpr:g}{same} (about {copies['expected_false_positives']:.1f} expected by chance); "
                       f"see {out / 'samples.csv'} and {out / 'summary.json'}")
        curation = result.verdicts.get("curation") or {}
        if curation.get("outlier_rule"):
            settings = result.verdicts.get("settings") or {}
            scales = settings.get("outlier_scales") or []
            over = f" at k = {scales[0]} to {scales[-1]}" if len(scales) > 1 else ""
            click.echo(f"Outliers: {curation['outliers']} of {counts['training']} training images flagged "
                       f"(outlier score above {settings.get('outlier_z', defaults.OUTLIER_Z):g}{over}; the rule "
                       f"in full: {out / 'summary.json'}, \"curation\"); see {out / 'training.csv'}")
        found = result.verdicts.get("modes") or {}
        if found.get("k"):
            counts_, spread = found["counts"], found["effective_modes"]
            click.echo(f"Modes: {found['k']} in the training set; the samples spread over {spread['generated']:.1f} "
                       f"effective modes (the training set {spread['training']:.1f}): {counts_['missed']} missed, "
                       f"{counts_['under-produced']} under-produced, {counts_['over-produced']} over-produced; "
                       f"see {out / 'summary.json'} (\"modes\") or the web app's Modes view")
        conditional = result.verdicts.get("conditional")
        if conditional:
            click.echo(f"Conditional: {conditional['with_truth']} of {conditional['outputs']} outputs have a ground "
                       f"truth ({conditional['heldout_truth']} held out); {conditional['follows_truth']} follow it "
                       f"(never copies; {conditional['cleared']} of them cleared of a calibrated flag)")
        for note in ((result.verdicts.get("overlap") or {}).get("warning"), copies.get("not_judged")):
            if note:
                click.echo(f"Warning: {note}", err=True)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    _echo_recall(result.search_index)
    click.echo(f"Run folder: {out}")


def _echo_recall(search: dict | None) -> None:
    """The line saying an approximate search's measured recall (nothing for exact search)."""
    search = search or {}
    if search.get("recall_at_k") is not None:
        click.echo(f"Search: {search['backend']}, recall@{search['recall_k']} against exact search "
                   f"{search['recall_at_k']:.3f} (lowest of {len(search['searches'])} searches, "
                   f"{search['recall_queries']} sampled queries each)")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("images", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run folder whose feature store is filled (`novelty analyze --out` it later).")
@click.option("--set", "set_name", type=click.Choice(runners.SETS), default="training",
              help="Which side of a later `novelty analyze` the images are.")
@click.option("--runner", type=click.Choice(runners.BEAM_RUNNERS),
              default="DirectRunner", help="Apache Beam runner.")
@LAYERS_OPTION
@EMBEDDING_OPTIONS
@BLOCK1_REDUCE_OPTION
@SEED
@click.argument("pipeline_args", nargs=-1, type=click.UNPROCESSED, metavar="[BEAM OPTIONS]...")
def embed(images: Path, out: Path, set_name: str, runner: str, layers: tuple[str, ...], weights: str,
          preprocess: str, input_size: int, fit_mode: str, batch_size: int, feature_dtype: str,
          block1_reduce: str, seed: int, pipeline_args: tuple[str, ...]) -> None:
    """Embed IMAGES (a folder or a `novelty prepare` output) on Apache Beam into RUN's feature store.

    Any other options go to Beam (e.g. --direct_running_mode multi_processing --direct_num_workers 2).
    Run `novelty analyze --out RUN` with the same embedding options afterwards: it embeds none of them.
    """
    options = analysis.AnalyzeOptions(layers=layers, weights=weights, preprocess=preprocess, input_size=input_size,
                                      fit_mode=fit_mode, batch_size=batch_size, feature_dtype=feature_dtype,
                                      block1_reduce=block1_reduce)
    click.echo(f"Embedding {images} on Beam's {runner}...", err=True)
    result = runners.embed_on_beam(images, out, set_name=set_name, options=options, seed=seed, runner=runner,
                           pipeline_args=pipeline_args)
    click.echo(f"Embedded {result.embedded} images on {runner} ({result.used} usable {set_name} images, "
               f"{result.used - result.stored} of them already in the store; {result.skipped} files skipped, "
               f"see {out / 'files.csv'})")
    click.echo(f"Feature store: {out / 'features' / set_name}")


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--host", default=defaults.HOST, help="Address to bind; the default serves this machine only.")
@click.option("--port", type=bounded("port"), default=defaults.PORT, help="Port to listen on.")
def serve(run: Path, host: str, port: int) -> None:
    """Browse RUN in a web browser: samples, neighbours per layer, training-set curation, queries."""
    from webdemo import Settings  # the one place novelty imports webdemo: the app is optional
    from webdemo.server import serve as run_server

    run_server(Settings(run=run), host=host, port=port, announce=lambda line: click.echo(line, err=True))


@main.command()
@click.option("--train", "train_dir", required=True, type=click.Path(path_type=Path),
              help="Folder of real images: some become planted copies, some unseen samples.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder: validation.json and a feature cache.")
@WEIGHTS_OPTION
@PREPROCESS_OPTION
@INPUT_SIZE_OPTION
@LAYERS_OPTION
@FIT
@BLOCK1_REDUCE_OPTION
@click.option("--copies", type=bounded("validate_copies"), default=defaults.VALIDATE_COPIES,
              help="Training images copied in each way (exact, flip, crop, jitter, jpeg).")
@click.option("--unseen", "unseen_fraction", type=bounded("unseen_fraction"),
              default=defaults.VALIDATE_UNSEEN_FRACTION, help="Share of the images set aside as unseen samples.")
@HOLDOUT_OPTION
@FPR_OPTION
@MIRROR_OPTION
@ALIGN_OPTION
@INDEX_OPTION
@BATCH_SIZE_OPTION
@SEED
def validate(train_dir: Path, out: Path, weights: str, preprocess: str, input_size: int,
             layers: tuple[str, ...], fit_mode: str, block1_reduce: str, copies: int, unseen_fraction: float,
             holdout_fraction: float, fpr: float, mirror: bool, align: bool, index: str, batch_size: int,
             seed: int) -> None:
    """Plant known copies and unseen real images among samples; report what the copy verdict flags."""
    report = judge_validate.validate(train_dir, out, weights=weights, preprocess=preprocess, input_size=input_size,
                          layers=layers, fit_mode=fit_mode, block1_reduce=block1_reduce, copies=copies,
                          unseen_fraction=unseen_fraction, holdout_fraction=holdout_fraction, fpr=fpr,
                          seed=seed, batch_size=batch_size, mirror=mirror, align=align, index=index)
    click.echo(report.table())
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    _echo_recall(report.search_index)
    click.echo(f"Report: {out / judge_validate.REPORT_FILE}; plot: {out / judge_validate.PLOT_FILE}")


@main.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for the static site (new, empty, or an earlier export).")
def export_command(run: Path, out: Path) -> None:
    """Write a static copy of RUN's gallery and neighbour views that opens from file:// (no server)."""
    from webdemo.export import export_site

    index = export_site(run, out)
    click.echo(f"Static site: {index.resolve().as_uri()}")


main.add_command(curate)
main.add_command(more_like_command)
