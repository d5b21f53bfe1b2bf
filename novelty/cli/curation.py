"""`novelty curate` and `novelty more-like`: the training-set curation commands.

They are added to the ``novelty`` group in :mod:`novelty.cli.commands`, which translates their errors
like every other command's. Both read a run's ``training.csv`` through :mod:`novelty.curate.selection`;
``curate`` moves files only through :mod:`novelty.curate.quarantine` (journalled, never deleting).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from novelty.curate import morelike, selection
from novelty.curate import quarantine as q
from novelty.errors import NoveltyError


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


@click.command()
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


@click.command("more-like")
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
