"""Quarantine: moves that lose nothing, survive interruption, and undo byte for byte."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from novelty.cli import main
from novelty.curate import quarantine as q
from novelty.curate import selection
from novelty.errors import NoveltyError

FILES = {  # training id -> bytes (any bytes: quarantine never decodes)
    "a.jpg": b"alpha" * 100,
    "b.jpg": b"bravo" * 50,
    "c.jpg": b"bravo" * 50,  # duplicate group 1 with b.jpg
    "sub/d.png": b"delta",
    "sub/deep/e.png": b"echo" * 7,  # duplicate group 2 with sub/d.png and f.jpg
    "f.jpg": b"foxtrot",
    "g.jpg": b"golf",
}
COLUMNS = ["id", "outlier_score", "is_outlier", "duplicate_group", "times_retrieved", "is_dark", "is_blurry"]
TABLE = [  # the run's training.csv: outliers a.jpg and sub/deep/e.png; groups {b, c} and {sub/d, sub/deep/e, f}
    ["a.jpg", "0.91", "true", "", "0", "false", "false"],
    ["b.jpg", "0.10", "false", "1", "3", "false", "false"],
    ["c.jpg", "0.12", "false", "1", "0", "false", "true"],
    ["sub/d.png", "0.20", "False", "2", "1", "false", "false"],
    ["sub/deep/e.png", "0.88", "True", "2", "0", "true", "false"],
    ["f.jpg", "0.30", "false", "2", "5", "false", "false"],
    ["g.jpg", "0.05", "false", "", "2", "false", "false"],
]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: relative path -> (bytes, mtime in ns)."""
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    train = tmp_path / "train"
    for ident, data in FILES.items():
        path = train / ident
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"version": "test", "train_dir": str(train)}))
    with open(run / "training.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(TABLE)
    return train, run, tmp_path / "quarantine"


def by_id(outcomes):
    return {o.id: o for o in outcomes}


def test_select_outliers_and_duplicates(setup):
    _, run, _ = setup
    selected, known = selection.select(run, outliers=True, duplicates=True)
    assert selected == {
        "a.jpg": "outlier",
        "c.jpg": "duplicate of b.jpg",  # b.jpg kept: first of its group in sorted order
        "sub/d.png": "duplicate of f.jpg",
        "sub/deep/e.png": "outlier; duplicate of f.jpg",
    }
    assert known == set(FILES)


def test_id_list_reads_comments_and_blank_lines(tmp_path):
    path = tmp_path / "reject.txt"
    path.write_text("\ufeff# exported from the web demo\na.jpg\n\n  sub/d.png  \n# done\n")
    assert selection.read_id_list(path) == ["a.jpg", "sub/d.png"]
    with pytest.raises(NoveltyError, match="id list not found"):
        selection.read_id_list(tmp_path / "nope.txt")


def test_move_then_undo_restores_the_tree_byte_for_byte(setup):
    train, run, qdir = setup
    before = snapshot(train)
    selected, known = selection.select(run, outliers=True, duplicates=True)
    outcomes = q.curate(train, qdir, selected, known_ids=known)
    assert {o.id: o.result for o in outcomes} == dict.fromkeys(selected, "moved")
    for ident in selected:
        assert not (train / ident).exists()
        assert (qdir / ident).read_bytes() == FILES[ident]  # relative paths kept
    assert snapshot(train) == {k: v for k, v in before.items() if k not in selected}

    manifest = q.load_manifest(qdir)
    assert set(manifest.entries) == set(selected)
    for ident, entry in manifest.entries.items():
        assert entry.status == "moved"
        assert entry.sha256 == hashlib.sha256(FILES[ident]).hexdigest()
        assert entry.size == len(FILES[ident])
        assert entry.original == str(train / ident) and entry.quarantined == str(qdir / ident)
        assert entry.reason == selected[ident] and entry.timestamp
    lines = (qdir / q.MANIFEST).read_text().splitlines()
    assert len(lines) == 1 + len(selected)  # compacted: header + one entry per file

    outcomes = q.undo(qdir)
    assert {o.id: o.result for o in outcomes} == dict.fromkeys(selected, "restored")
    assert snapshot(train) == before  # bytes and modification times
    assert [p.name for p in qdir.rglob("*")] == [q.MANIFEST]
    assert {e.status for e in q.load_manifest(qdir).entries.values()} == {"restored"}


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("finish", ["resume", "undo"])
@pytest.mark.parametrize("stop", ["between files", "after copy, before unlink"])
def test_interrupted_move_can_be_resumed_or_undone(setup, monkeypatch, stop, finish):
    train, _, qdir = setup
    before = snapshot(train)
    selected = dict.fromkeys(FILES, "list")
    real_transfer, calls = q._transfer, []

    def flaky(source, target, sha256):
        calls.append(source)
        if len(calls) == 4:
            if stop == "after copy, before unlink":
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            raise Interrupt
        real_transfer(source, target, sha256)

    monkeypatch.setattr(q, "_transfer", flaky)
    with pytest.raises(Interrupt):
        q.curate(train, qdir, selected)
    monkeypatch.setattr(q, "_transfer", real_transfer)

    statuses = {e.id: e.status for e in q.load_manifest(qdir).entries.values()}
    assert sorted(statuses.values()) == ["moved"] * 3 + ["planned"] * 4
    present = {p.relative_to(train).as_posix() for p in train.rglob("*") if p.is_file()}
    present |= {p.relative_to(qdir).as_posix() for p in qdir.rglob("*") if p.is_file()}
    assert set(FILES) <= present  # nothing lost
    with pytest.raises(NoveltyError, match="unfinished move.*--resume"):
        q.curate(train, qdir, {"g.jpg": "list"})

    if finish == "resume":
        outcomes = q.resume(qdir)
        assert [o.result for o in outcomes] == ["moved"] * 4
        assert snapshot(train) == {}
        assert {k: v[0] for k, v in snapshot(qdir).items() if k != q.MANIFEST} == FILES
    outcomes = q.undo(qdir)
    assert {o.result for o in outcomes} == {"restored"}
    assert snapshot(train) == before


def test_a_line_cut_short_by_an_interruption_is_ignored(setup):
    train, _, qdir = setup
    q.curate(train, qdir, {"a.jpg": "list", "g.jpg": "list"})
    with open(qdir / q.MANIFEST, "a") as handle:
        handle.write('{"type": "status", "id": "a.jpg", "sta')
    assert {e.status for e in q.load_manifest(qdir).entries.values()} == {"moved"}
    (qdir / q.MANIFEST).write_text((qdir / q.MANIFEST).read_text() + "garbage\n" + '{"type": "x"}\n')
    with pytest.raises(NoveltyError, match="damaged at line 4"):
        q.load_manifest(qdir)


def test_undo_refuses_to_overwrite_a_new_file(setup):
    train, _, qdir = setup
    q.curate(train, qdir, {"a.jpg": "list", "sub/d.png": "list"})
    (train / "a.jpg").write_bytes(b"a new picture")
    outcomes = by_id(q.undo(qdir))
    assert outcomes["a.jpg"].result == "conflict" and "a different file now exists" in outcomes["a.jpg"].detail
    assert outcomes["sub/d.png"].result == "restored"
    assert (train / "a.jpg").read_bytes() == b"a new picture"  # untouched
    assert (qdir / "a.jpg").read_bytes() == FILES["a.jpg"]  # still quarantined
    assert q.load_manifest(qdir).entries["a.jpg"].status == "moved"

    (train / "a.jpg").rename(train / "a-new.jpg")  # the user resolves it; undo again
    assert [o.result for o in q.undo(qdir)] == ["restored"]
    assert (train / "a.jpg").read_bytes() == FILES["a.jpg"]


def test_undo_refuses_a_changed_quarantined_file(setup):
    train, _, qdir = setup
    q.curate(train, qdir, {"a.jpg": "list"})
    (qdir / "a.jpg").write_bytes(b"edited in quarantine")
    outcome, = q.undo(qdir)
    assert outcome.result == "failed" and "checksum differs" in outcome.detail
    assert not (train / "a.jpg").exists() and (qdir / "a.jpg").exists()


def test_bad_ids_are_reported_per_file_and_never_moved(setup):
    train, run, qdir = setup
    secret = train.parent / "secret.txt"
    secret.write_bytes(b"not yours")
    (train / "link.jpg").symlink_to(secret)
    (train / "linked").symlink_to(train / "sub", target_is_directory=True)
    selected = dict.fromkeys(["a.jpg", "../secret.txt", "/etc/passwd", "sub/../../secret.txt", "missing.jpg",
                              "link.jpg", "linked/d.png", "sub", "zz-not-in-table.jpg"], "list")
    (train / "zz-not-in-table.jpg").write_bytes(b"zz")
    outcomes = by_id(q.curate(train, qdir, selected, known_ids=set(FILES) | {"link.jpg", "linked/d.png",
                                                                               "sub", "missing.jpg"}))
    assert outcomes["a.jpg"].result == "moved"
    reasons = {ident: o.detail for ident, o in outcomes.items() if o.result == "skipped"}
    assert set(reasons) == set(selected) - {"a.jpg"}
    assert "unknown id" in reasons["zz-not-in-table.jpg"]
    assert "not found" in reasons["missing.jpg"]
    assert "symbolic link" in reasons["link.jpg"] and "symbolic link" in reasons["linked/d.png"]
    assert "not a regular file" in reasons["sub"]
    for escaping in ("../secret.txt", "/etc/passwd", "sub/../../secret.txt"):
        assert "not a path inside the training folder" in reasons[escaping]
    assert secret.read_bytes() == b"not yours" and (train / "link.jpg").is_symlink()
    assert (train / "sub/d.png").exists() and (train / "zz-not-in-table.jpg").exists()
    assert set(q.load_manifest(qdir).entries) == {"a.jpg"}


def test_second_curate_adds_and_skips_what_is_already_quarantined(setup):
    train, _, qdir = setup
    q.curate(train, qdir, {"a.jpg": "list"})
    outcomes = by_id(q.curate(train, qdir, {"a.jpg": "list", "g.jpg": "list"}))
    assert outcomes["a.jpg"].result == "skipped" and "already quarantined" in outcomes["a.jpg"].detail
    assert outcomes["g.jpg"].result == "moved"
    assert {e.status for e in q.load_manifest(qdir).entries.values()} == {"moved"}


def test_dry_run_writes_nothing(setup):
    train, run, qdir = setup
    before = snapshot(train)
    outcomes = q.curate(train, qdir, {"a.jpg": "outlier", "nope.jpg": "list"}, dry_run=True)
    assert [(o.id, o.result) for o in outcomes] == [("a.jpg", "planned"), ("nope.jpg", "skipped")]
    assert "500 bytes" in outcomes[0].detail
    assert snapshot(train) == before and not qdir.exists()


def test_folders_must_not_nest(setup):
    train, _, _ = setup
    with pytest.raises(NoveltyError, match="must not contain one another"):
        q.curate(train, train / "quarantine", {"a.jpg": "list"})
    with pytest.raises(NoveltyError, match="training folder not found"):
        q.curate(train.parent / "nope", train.parent / "q", {"a.jpg": "list"})


def test_selection_errors(setup, tmp_path):
    _, run, _ = setup
    with pytest.raises(NoveltyError, match="nothing selected"):
        selection.select(run)
    with pytest.raises(NoveltyError, match="give --run RUN"):
        selection.select(None, outliers=True)
    (run / "training.csv").write_text("id,is_outlier\na.jpg,maybe\n")
    with pytest.raises(NoveltyError, match="is_outlier of 'a.jpg' .* 'maybe'; expected true or false"):
        selection.select(run, outliers=True)
    with pytest.raises(NoveltyError, match="no 'duplicate_group' column"):
        selection.select(run, duplicates=True)
    (run / "training.csv").unlink()
    ids = tmp_path / "ids.txt"
    ids.write_text("a.jpg\n")
    assert selection.select(run, id_list=ids) == ({"a.jpg": "listed in ids.txt"}, None)  # --list works without it
    with pytest.raises(NoveltyError, match="training table not found"):
        selection.select(run, outliers=True)


def invoke(*args):
    return CliRunner().invoke(main, ["curate", *[str(a) for a in args]])


def test_cli_curate_undo_and_errors(setup, tmp_path):
    train, run, qdir = setup
    before = snapshot(train)
    result = invoke("--run", run, "--quarantine", qdir, "--outliers", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "planned   a.jpg" in result.output and not qdir.exists()

    ids = tmp_path / "reject.txt"
    ids.write_text("g.jpg\n../escape.jpg\n")
    result = invoke("--run", run, "--quarantine", qdir, "--outliers", "--list", ids)  # --train from run.json
    assert result.exit_code == 0, result.output
    assert "moved     a.jpg  (outlier)" in result.output
    assert "moved     g.jpg  (listed in reject.txt)" in result.output
    assert "skipped   ../escape.jpg" in result.output
    assert "3 moved, 1 skipped" in result.output and f"--undo {qdir}" in result.output

    result = invoke("--resume", qdir)
    assert result.exit_code == 0 and "nothing to do" in result.output
    result = invoke("--undo", qdir)
    assert result.exit_code == 0, result.output
    assert "3 restored" in result.output and snapshot(train) == before

    for args, message in [
        ((), "give exactly one of --quarantine, --resume, --undo; received: none"),
        (("--undo", qdir, "--resume", qdir), "received: --resume, --undo"),
        (("--quarantine", qdir, "--list", ids), "which training folder"),
        (("--train", train, "--quarantine", qdir, "--duplicates"), "give --run RUN"),
        (("--undo", tmp_path / "empty"), "no quarantine manifest"),
        (("--undo", qdir, "--dry-run"), "--dry-run works with --quarantine only"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and message in result.output
        assert "Traceback" not in result.output


def test_cli_dry_run_says_what_it_would_write_not_a_manifest_it_did_not(setup):
    train, run, qdir = setup
    result = invoke("--run", run, "--quarantine", qdir, "--outliers", "--dry-run")
    assert result.exit_code == 0, result.output
    assert not qdir.exists() and "Manifest:" not in result.output
    assert result.stdout.splitlines()[-1] == (
        f"2 planned. Dry run, nothing moved or written; without --dry-run, 2 images would move to {qdir}, "
        f"journalled in {qdir / q.MANIFEST}")
    (run / "training.csv").write_text("id,is_outlier\na.jpg,false\n")
    result = invoke("--run", run, "--quarantine", qdir, "--outliers", "--dry-run")
    assert result.stdout.splitlines()[-1].endswith("without --dry-run, nothing would move"), result.output


def test_cli_exit_status_is_1_when_a_file_fails(setup):
    train, _, qdir = setup
    q.curate(train, qdir, {"a.jpg": "list"})
    (train / "a.jpg").write_bytes(b"new")
    result = invoke("--undo", qdir)
    assert result.exit_code == 1 and "conflict  a.jpg" in result.output


def test_cli_exit_status_is_1_when_every_listed_id_was_skipped(setup, tmp_path):
    train, run, qdir = setup
    ids = tmp_path / "ids.txt"
    ids.write_text("../escape.jpg\nnot-there.jpg\n")
    result = invoke("--run", run, "--quarantine", qdir, "--list", ids)
    assert result.exit_code == 1, result.output
    assert "skipped   ../escape.jpg" in result.output and "skipped   not-there.jpg" in result.output
    assert result.stderr.strip().splitlines()[-1] == ("Error: nothing was done: all 2 selected ids were "
                                                      "skipped (reasons above)")
    ids.write_text("g.jpg\nnot-there.jpg\n")  # one moved: done, even with a skip beside it
    assert invoke("--run", run, "--quarantine", qdir, "--list", ids).exit_code == 0


def test_a_file_changed_after_planning_is_not_moved(setup, monkeypatch):
    train, _, qdir = setup

    def interrupt(source, target, sha256):
        raise Interrupt

    monkeypatch.setattr(q, "_transfer", interrupt)
    with pytest.raises(Interrupt):
        q.curate(train, qdir, {"a.jpg": "list", "b.jpg": "list"})
    monkeypatch.undo()
    (train / "a.jpg").write_bytes(b"replaced by the user meanwhile")
    outcomes = by_id(q.resume(qdir))
    assert outcomes["a.jpg"].result == "failed" and "checksum differs" in outcomes["a.jpg"].detail
    assert outcomes["b.jpg"].result == "moved"
    assert (train / "a.jpg").read_bytes() == b"replaced by the user meanwhile"
    assert not (qdir / "a.jpg").exists() and not list(qdir.glob(".*tmp"))
    assert q.load_manifest(qdir).entries["a.jpg"].status == "failed"
