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
from novelty.cli.options import (
    ALIGN_OPTION,
    BATCH_SIZE_OPTION,
    BLOCK1_REDUCE_OPTION,
    FIT,
    FPR_OPTION,
    HOLDOUT_OPTION,
    INPUT_SIZE_OPTION,
    LAYERS_OPTION,
    MIRROR_OPTION,
    PREPROCESS_OPTION,
    SEED,
    SIZE,
    WEIGHTS_OPTION,
    bounded,
    options,
)
from novelty.curate import morelike, selection
from novelty.curate import quarantine as q
from novelty.errors import NoveltyError
from novelty.gan import generate as gan_generate
from novelty.gan import training
from novelty.gan.dcgan import GanConfig
from novelty.images import records
from novelty.images.pipeline import training_images
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
@SIZE
@FIT
@click.option("--shard-size", type=bounded("shard_size"), default=defaults.SHARD_SIZE,
              help="Images per TFRecord shard.")
def prepare(images: Path, out: Path, size: int, fit_mode: str, shard_size: int) -> None:
    """Decode an image folder once into TFRecord shards that `novelty train` streams."""
    result = records.prepare(images, out, size, fit_mode, shard_size)
    click.echo(result.summary())


TRAIN_OPTIONS = options(
    click.option("--out", required=True, type=click.Path(path_type=Path), help="Training folder (resumed if it exists)."),
    SIZE,
    FIT,
    click.option("--steps", type=bounded("steps"), default=defaults.STEPS),
    click.option("--batch-size", type=bounded("batch_size"), default=defaults.BATCH_SIZE, help="Global batch, split over replicas."),
    click.option("--lr", "learning_rate", type=bounded("learning_rate"), default=defaults.LEARNING_RATE),
    click.option("--beta1", "beta_1", type=bounded("beta_1"), default=defaults.BETA_1),
    click.option("--z-dim", type=bounded("z_dim"), default=defaults.Z_DIM),
    click.option("--base-filters", type=bounded("base_filters"), default=defaults.BASE_FILTERS, help="Network width."),
    click.option("--checkpoint-every", type=bounded("checkpoint_every"), default=defaults.CHECKPOINT_EVERY),
    click.option("--log-every", type=bounded("log_every"), default=defaults.LOG_EVERY),
    click.option("--flip/--no-flip", default=False, help="Random horizontal flips."),
    click.option("--jitter/--no-jitter", default=False, help="Random jitter: upscale, then random crop."),
    click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "tpu"]), default="auto",
                 help="tf.distribute strategy; auto picks TPU if --tpu is given, mirrored for several GPUs."),
    click.option("--tpu", default=None, help="TPU name or grpc:// address."),
    click.option("--ema", type=bounded("ema"), default=defaults.EMA,
                 help="Decay of a moving average of the generator, sampled and saved (0: off; e.g. 0.999)."),
    click.option("--diffaugment", default=defaults.DIFFAUGMENT, metavar="POLICIES",
                 help="DiffAugment of real and generated images before the discriminator: a comma-separated "
                      "list of color, translation, cutout (empty: off)."),
    click.option("--label-smoothing", type=bounded("label_smoothing"), default=defaults.LABEL_SMOOTHING,
                 help="One-sided: the discriminator's target for real images is 1 - this."),
    click.option("--quality-every", type=bounded("quality_every"), default=defaults.QUALITY_EVERY,
                 help="Steps between block5_pool PRDC evaluations, written to quality.csv/png (0: off)."),
    click.option("--quality-samples", type=bounded("quality_samples"), default=defaults.QUALITY_SAMPLES,
                 help="Fixed-noise samples, and training images, per PRDC evaluation."),
)


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@TRAIN_OPTIONS
@WEIGHTS_OPTION
@SEED
def train(data: Path, out: Path, size: int, fit_mode: str, steps: int, batch_size: int,
          learning_rate: float, beta_1: float, z_dim: int, base_filters: int, checkpoint_every: int,
          log_every: int, flip: bool, jitter: bool, strategy: str, tpu: str | None, ema: float,
          diffaugment: str, label_smoothing: float, quality_every: int, quality_samples: int, weights: str,
          seed: int) -> None:
    """Train a DCGAN on DATA: an image folder or a folder written by `novelty prepare`."""
    config = GanConfig(image_size=size, z_dim=z_dim, base_filters=base_filters)
    options = training.TrainOptions(steps=steps, batch_size=batch_size, learning_rate=learning_rate, beta_1=beta_1,
                           checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, flip=flip,
                           jitter=jitter, strategy=strategy, tpu=tpu, ema=ema, diffaugment=diffaugment,
                           label_smoothing=label_smoothing, quality_every=quality_every,
                           quality_samples=quality_samples, weights=weights)
    training.check_resume(out, config, options)  # before decoding DATA, which can take minutes
    dataset, description = training_images(data, size, fit_mode)
    click.echo(f"Training on {description}", err=True)
    last = training.train(dataset, out, config, options, source=str(data))
    click.echo(f"Latest checkpoint: {last}")
    click.echo(f"Samples: {out / 'samples'}")
    if (out / "quality.csv").is_file():
        click.echo(f"Quality (block5_pool PRDC by step): {out / 'quality.csv'}, {out / 'quality.png'}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A checkpoint folder or a training folder (its latest checkpoint).")
@click.option("--n", "n", type=bounded("n_samples"), default=defaults.N_SAMPLES, help="Number of samples.")
@SEED
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
def generate(checkpoint: Path, n: int, seed: int, out: Path) -> None:
    """Generate N seeded PNG samples and a grid from a checkpoint."""
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
@WEIGHTS_OPTION
@PREPROCESS_OPTION
@INPUT_SIZE_OPTION
@FIT
@BATCH_SIZE_OPTION
@click.option("--feature-dtype", type=click.Choice(defaults.FEATURE_DTYPES), default=defaults.FEATURE_DTYPE,
              help="Feature-store storage (float32 is used anyway where float16 cannot hold the values).")
@BLOCK1_REDUCE_OPTION
@click.option("--index", type=click.Choice(["exact", "faiss", "auto"]), default=defaults.INDEX,
              help=f"Neighbour search: exact, faiss (HNSW from {defaults.FAISS_ANN_MIN_TRAINING:,} training images "
                   f"on, recall@24 measured), or auto (faiss from {defaults.FAISS_AUTO_TRAINING:,} on).")
@HOLDOUT_OPTION
@FPR_OPTION
@MIRROR_OPTION
@ALIGN_OPTION
def analyze(train_dir: Path, generated_dir: Path | None, checkpoint: Path | None, n: int, seed: int,
            out: Path, layers: tuple[str, ...], k: int, weights: str, preprocess: str, input_size: int,
            fit_mode: str, batch_size: int, feature_dtype: str, block1_reduce: str, index: str,
            holdout_fraction: float, fpr: float, mirror: bool, align: bool) -> None:
    """Find the nearest training images of every generated image; write the run folder OUT."""
    options = analysis.AnalyzeOptions(layers=layers, k=k, weights=weights, preprocess=preprocess,
                             input_size=input_size, batch_size=batch_size, fit_mode=fit_mode,
                             feature_dtype=feature_dtype, block1_reduce=block1_reduce, index=index,
                             holdout_fraction=holdout_fraction, fpr=fpr, mirror=mirror, align=align)
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
            click.echo(f"Outliers: {curation['outliers']} of {counts['training']} training images flagged "
                       f"({curation['outlier_rule']}); see {out / 'training.csv'}")
        found = result.verdicts.get("modes") or {}
        if found.get("k"):
            counts_, spread = found["counts"], found["effective_modes"]
            click.echo(f"Modes: {found['k']} in the training set; the samples spread over {spread['generated']:.1f} "
                       f"effective modes (the training set {spread['training']:.1f}): {counts_['missed']} missed, "
                       f"{counts_['under-produced']} under-produced, {counts_['over-produced']} over-produced; "
                       f"see {out / 'summary.json'} (\"modes\") or the web app's Modes view")
        for note in ((result.verdicts.get("overlap") or {}).get("warning"), copies.get("not_judged")):
            if note:
                click.echo(f"Warning: {note}", err=True)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    search = result.search_index or {}
    if search.get("recall_at_k") is not None:
        click.echo(f"Search: {search['backend']}, recall@{search['recall_k']} against exact search "
                   f"{search['recall_at_k']:.3f} (lowest of {len(search['searches'])} searches, "
                   f"{search['recall_queries']} sampled queries each)")
    click.echo(f"Run folder: {out}")


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
@BATCH_SIZE_OPTION
@SEED
def validate(train_dir: Path, out: Path, weights: str, preprocess: str, input_size: int,
             layers: tuple[str, ...], fit_mode: str, block1_reduce: str, copies: int, unseen_fraction: float,
             holdout_fraction: float, fpr: float, mirror: bool, align: bool, batch_size: int, seed: int) -> None:
    """Plant known copies and unseen real images among samples; report what the copy verdict flags."""
    report = judge_validate.validate(train_dir, out, weights=weights, preprocess=preprocess, input_size=input_size,
                          layers=layers, fit_mode=fit_mode, block1_reduce=block1_reduce, copies=copies,
                          unseen_fraction=unseen_fraction, holdout_fraction=holdout_fraction, fpr=fpr,
                          seed=seed, batch_size=batch_size, mirror=mirror, align=align)
    click.echo(report.table())
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
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


def _report_curate(outcomes: list[q.Outcome], folder: Path, *, dry_run: bool, undo: bool) -> None:
    """One line per outcome, a summary, and exit status 1 if any file failed or every one was skipped."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
        click.echo(f"{outcome.result:<9} {outcome.id}" + (f"  ({outcome.detail})" if outcome.detail else ""))
    summary = ", ".join(f"{n} {result}" for result, n in sorted(counts.items())) or "nothing to do"
    journal = Path(folder) / q.MANIFEST
    if dry_run:  # nothing was written: say what the real run would write, not a manifest that is not there
        planned = counts.get("planned", 0)
        would = (f"without --dry-run, {planned} image{'' if planned == 1 else 's'} would move to {folder}, "
                 f"journalled in {journal}" if planned else "without --dry-run, nothing would move")
        click.echo(f"{summary}. Dry run, nothing moved or written; {would}")
    else:
        hint = "" if undo else f"; undo with `novelty curate --undo {folder}`"
        click.echo(f"{summary}. Manifest: {journal}{hint}")
    if counts.get("failed") or counts.get("conflict"):
        sys.exit(1)
    if counts and set(counts) == {"skipped"}:
        click.echo(f"Error: nothing was done: all {counts['skipped']} selected ids were skipped (reasons above)",
                   err=True)
        sys.exit(1)


@main.command()
@click.option("--run", "run", type=click.Path(path_type=Path), default=None, metavar="RUN",
              help="Run folder: its training.csv drives --outliers/--duplicates and checks listed ids.")
@click.option("--train", "train", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Training image folder  [default: the run's train_dir]")
@click.option("--quarantine", "qdir", type=click.Path(path_type=Path), default=None, metavar="QDIR",
              help="Folder the images move to, keeping their relative paths (outside the training folder).")
@click.option("--outliers", is_flag=True, help="Select the run's outliers (is_outlier).")
@click.option("--duplicates", is_flag=True, help="Select every duplicate but the first (sorted) of each group.")
@click.option("--list", "id_list", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Select the training ids in FILE, one per line ('#' comments), e.g. the web demo's export.")
@click.option("--dry-run", is_flag=True, help="Print the plan, move nothing.")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None, metavar="QDIR",
              help="Finish an interrupted move into QDIR.")
@click.option("--undo", "undo_dir", type=click.Path(path_type=Path), default=None, metavar="QDIR",
              help="Move everything quarantined in QDIR back, checking checksums.")
def curate(run: Path | None, train: Path | None, qdir: Path | None, outliers: bool, duplicates: bool,
           id_list: Path | None, dry_run: bool, resume_dir: Path | None, undo_dir: Path | None) -> None:
    """Move chosen training images to a quarantine folder, never deleting; undo or resume later.

    Every step is journalled in QDIR/quarantine.jsonl (id, paths, sha256, size, status). Problems
    with single files are reported and skipped; the exit status is 1 if any file failed, or if
    every selected file was skipped.
    """
    modes = [name for name, on in (("--resume", resume_dir), ("--undo", undo_dir), ("--quarantine", qdir)) if on]
    if len(modes) != 1:
        raise NoveltyError(f"give exactly one of --quarantine, --resume, --undo; received: {', '.join(modes) or 'none'}")
    if dry_run and not qdir:
        raise NoveltyError("--dry-run works with --quarantine only")
    folder = qdir or resume_dir or undo_dir
    try:
        if undo_dir:
            outcomes = q.undo(undo_dir, progress=True)
        elif resume_dir:
            outcomes = q.resume(resume_dir, progress=True)
        else:
            selected, known = selection.select(run, outliers=outliers, duplicates=duplicates, id_list=id_list)
            outcomes = q.curate(selection.training_folder(run, train), qdir, selected, known_ids=known,
                                dry_run=dry_run, progress=True)
    except KeyboardInterrupt:
        raise NoveltyError(f"interrupted; nothing is lost: finish with `novelty curate --resume {folder}` "
                           f"or roll back with `novelty curate --undo {folder}`") from None
    _report_curate(outcomes, folder, dry_run=dry_run, undo=bool(undo_dir))



@main.command("more-like")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("examples", type=click.Path(path_type=Path))
@click.option("--not", "not_list", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Training ids to rank away from, one per line.")
@click.option("--out", type=click.Path(path_type=Path), default=None, metavar="CSV",
              help="Where to write id,score,rank  [default: RUN/more-like.csv]")
def more_like_command(run: Path, examples: Path, not_list: Path | None, out: Path | None) -> None:
    """Rank RUN's training images by likeness to the ids in EXAMPLES (one per line, as in training.csv).

    Both layers count; examples and --not ids are left out of the ranking. Prints the top ten.
    """
    ranked = morelike.more_like(run, selection.read_id_list(examples), selection.read_id_list(not_list) if not_list else ())
    path = morelike.write_ranked(out or Path(run) / morelike.RANKED_FILE, ranked)
    for row in ranked.rows(10):
        click.echo(f"{row['rank']:>3}  {row['score']:8.3f}  {row['id']}")
    click.echo(f"Ranked {len(ranked.ids)} training images: {path}")

