"""The run folder's tables (novelty.run.tables): one writer, one reader, declared dtypes, and the one
error for a run folder made by an older version, through the Python API, the web app and the CLI."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from webhelpers import LAYERS, ODD_GENERATED_ID, make_run

import novelty
from novelty.cli import main as cli
from novelty.errors import NoveltyError
from novelty.run import tables
from novelty.run.folder import RunFolder
from webdemo.app import create_app
from webdemo.settings import Settings

SAMPLE_ROWS = [  # in the order novelty.judge.verdicts builds them; a layer, then the aligned match
    {"id": ODD_GENERATED_ID, "verdict": "copy", "copy_score": 0.857143, "is_copy": True, "copy_p_value": 0.142857,
     "layer_agreement": None, "duplicate_group": 2, "block5_pool_nearest_id": "a, \"quoted\".png",
     "block5_pool_similarity": 1.0, "block5_pool_mirrored": False, "block5_pool_heldout_share": 0.0,
     "block5_pool_p_value": 0.142857, "aligned_nearest_id": None, "aligned_similarity": 0.3,
     "aligned_mirrored": True, "aligned_heldout_share": 0.5, "aligned_p_value": 0.5, "identical_id": None,
     "identical_kind": None, "aligned_scale": 0.8, "aligned_crop": "sample"},
    {"id": "g1.png", "verdict": "novel", "copy_score": 0.0, "is_copy": False, "copy_p_value": 1.0,
     "layer_agreement": 0.25, "duplicate_group": None, "block5_pool_nearest_id": "t1.png",
     "block5_pool_similarity": -0.5, "block5_pool_mirrored": True, "block5_pool_heldout_share": 1.0,
     "block5_pool_p_value": 1.0, "aligned_nearest_id": "t1.png", "aligned_similarity": 0.1,
     "aligned_mirrored": False, "aligned_heldout_share": 1.0, "aligned_p_value": 1.0, "identical_id": "t1.png",
     "identical_kind": "same pixels", "aligned_scale": 1.0, "aligned_crop": "training"},
]
TRAINING_ROWS = [
    {"id": "ünï code.png", "outlier_score": 4.2, "is_outlier": True, "duplicate_group": 1, "duplicate_count": 2,
     "hub_score": 1.5, "is_hub": False, "times_retrieved": 7, "retrieval_hub_score": 0.5,
     "is_retrieval_hub": False, "split": "heldout", "near_blank_score": None, "is_near_blank": None},
    {"id": "t1.png", "outlier_score": -0.1, "is_outlier": False, "duplicate_group": None, "duplicate_count": None,
     "hub_score": 0.0, "is_hub": True, "times_retrieved": 0, "retrieval_hub_score": 0.0,
     "is_retrieval_hub": True, "split": "reference", "near_blank_score": 1.0, "is_near_blank": True},
]
FILES_ROWS = [
    {"set": "training", "id": "t1.png", "sha256": "ab" * 32, "width": 32, "height": 30, "mode": "RGB",
     "status": "used", "reason": None},
    {"set": "generated", "id": "bad.png", "sha256": None, "width": None, "height": None, "mode": None,
     "status": "skipped", "reason": "cannot decode"},
]


def _old_csv_text(rows: list[dict]) -> str:
    """What novelty.judge.verdicts wrote before the tables had a writer: the rows' own column order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (str(v).lower() if isinstance(v, bool) else v) for key, v in row.items()})
    return buffer.getvalue()


@pytest.mark.parametrize("schema, rows", [(tables.SAMPLES, SAMPLE_ROWS), (tables.TRAINING, TRAINING_ROWS),
                                          (tables.FILES, FILES_ROWS)], ids=["samples", "training", "files"])
def test_each_table_round_trips_with_its_types_and_the_old_bytes(tmp_path, schema, rows):
    path = tmp_path / schema.file
    tables.write_table(path, schema, rows)
    assert path.read_text(encoding="utf-8") == _old_csv_text(rows)  # the layout is what verdicts wrote
    table = tables.read_table(path, schema)
    assert table.rows == rows
    assert [name for name, _ in table.columns] == list(rows[0])
    moved = [dict([*list(row.items())[1:], next(iter(row.items()))]) for row in rows]  # first column last
    assert tables.table_text(schema, moved) == path.read_text(encoding="utf-8")  # the schema sets the order


def test_repeated_columns_are_found_per_layer_and_per_flag(tmp_path):
    tables.write_table(tmp_path / "samples.csv", tables.SAMPLES, SAMPLE_ROWS)
    tables.write_table(tmp_path / "training.csv", tables.TRAINING, TRAINING_ROWS)
    assert tables.read_table(tmp_path / "samples.csv", tables.SAMPLES).instances == \
        {"evidence": ["block5_pool", "aligned"], "truth_layer": []}  # truth columns: conditional runs only
    conditional = [row | {"truth_id": "a.png", "truth_split": "heldout", "follows_truth": False,
                          "truth_similarity_block5_pool": 0.5, "truth_rank_block5_pool": 25} for row in SAMPLE_ROWS]
    tables.write_table(tmp_path / "conditional.csv", tables.SAMPLES, conditional)
    table = tables.read_table(tmp_path / "conditional.csv", tables.SAMPLES)
    assert table.instances["truth_layer"] == ["block5_pool"] and table.rows[0]["truth_rank_block5_pool"] == 25
    training = tables.read_table(tmp_path / "training.csv", tables.TRAINING)
    assert training.instances == {"flag": ["near_blank"]}
    assert [tables.pixel_flags(row, training.instances["flag"]) for row in training.rows] == [[], ["near_blank"]]


def test_the_frame_has_the_declared_dtypes(tmp_path):
    tables.write_table(tmp_path / "samples.csv", tables.SAMPLES, SAMPLE_ROWS)
    tables.write_table(tmp_path / "training.csv", tables.TRAINING, TRAINING_ROWS)
    samples = tables.read_table(tmp_path / "samples.csv", tables.SAMPLES).frame()
    assert samples["is_copy"].dtype == bool and samples["copy_score"].dtype == np.float64
    assert samples["duplicate_group"].dtype == "Int64" and samples["duplicate_group"].isna().tolist() == [False, True]
    assert samples["id"].tolist() == [ODD_GENERATED_ID, "g1.png"] and samples["id"].dtype == object
    assert math.isnan(samples["layer_agreement"][0]) and samples["identical_id"].isna().tolist() == [True, False]
    training = tables.read_table(tmp_path / "training.csv", tables.TRAINING).frame()
    assert training["is_near_blank"].dtype == "boolean" and training["is_near_blank"].isna().tolist() == [True, False]
    assert training["times_retrieved"].dtype == np.int64 and training["is_hub"].tolist() == [False, True]


def test_the_writer_refuses_undeclared_or_missing_columns(tmp_path):
    with pytest.raises(NoveltyError, match=r"undeclared ones \['notes'\]"):
        tables.write_table(tmp_path / "samples.csv", tables.SAMPLES, [SAMPLE_ROWS[0] | {"notes": "x"}])
    without = {k: v for k, v in TRAINING_ROWS[0].items() if k != "split"}
    with pytest.raises(NoveltyError, match=r"lack the declared columns \['split'\]"):
        tables.write_table(tmp_path / "training.csv", tables.TRAINING, [without])
    with pytest.raises(NoveltyError, match="row 1 holds other columns"):
        tables.write_table(tmp_path / "training.csv", tables.TRAINING, [TRAINING_ROWS[0], without])
    assert not (tmp_path / "samples.csv").exists() and not (tmp_path / "training.csv").exists()


def test_a_cell_that_does_not_parse_is_one_line_naming_row_and_column(tmp_path):
    path = tmp_path / "training.csv"
    tables.write_table(path, tables.TRAINING, TRAINING_ROWS)
    path.write_text(path.read_text(encoding="utf-8").replace(",true,reference,", ",maybe,reference,"), encoding="utf-8")
    with pytest.raises(NoveltyError, match=r"row 3, column is_retrieval_hub \(bool\): expected true or false, "
                                           r"received 'maybe'") as caught:
        tables.read_table(path, tables.TRAINING)
    assert "\n" not in str(caught.value)
    path.write_text(path.read_text(encoding="utf-8").rsplit(",", 3)[0] + "\n", encoding="utf-8")  # last row cut
    with pytest.raises(NoveltyError, match=r"row 3 has 10 cells for the 13 columns \(cut short or damaged\)"):
        tables.read_table(path, tables.TRAINING)


def test_documents_name_their_keys_and_format(tmp_path):
    with pytest.raises(NoveltyError, match=r"older version of novelty \(run.json has no layers\)"):
        tables.check_document(tmp_path / "run.json", tables.RUN_JSON, {"train_dir": "a", "generated_dir": "b"})
    with pytest.raises(NoveltyError, match="summary.json has format 99; this version of novelty reads up to"):
        tables.check_document(tmp_path / "summary.json", tables.SUMMARY, {"format": 99})
    assert tables.document_problems(tables.SUMMARY, {"counts": {}, "copies": {}, "calibration": {},
                                                     "warnings": []}) == \
        [f"summary.json has format none, this version writes {tables.SUMMARY_FORMAT}"]


def test_the_run_writers_keep_to_the_declarations(tmp_path):
    from novelty.search.neighbors import load_neighbors

    fixture = make_run(tmp_path)
    lists = load_neighbors(fixture.root / "neighbors" / "block5_pool.json")
    assert {tuple(entry) for entries in lists.values() for entry in entries} == {tuple(tables.NEIGHBORS.keys)}
    run = json.loads((fixture.root / "run.json").read_text())
    assert set(tables.RUN_JSON.keys) <= set(run)


# ---- an older run folder: one line, from every reader ------------------------------------------------------

def _drop_column(path, name: str) -> None:
    header, rows = tables.raw_rows(path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[h for h in header if h != name], lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _assert_refused_everywhere(root, tmp_path, detail: str) -> None:
    """The same one line from novelty.open_run (or its tables), the web app and both CLI commands."""
    expected = f"{root} was made by an older version of novelty ({detail}): re-run `novelty analyze`"
    with pytest.raises(NoveltyError) as caught:
        run = novelty.open_run(root)
        run.samples, run.training  # noqa: B018 (reading them is the check)
    assert str(caught.value) == expected
    with pytest.raises(NoveltyError) as caught:
        create_app(Settings(run=root, cache_dir=tmp_path / "cache"))
    assert str(caught.value) == expected
    for command in ("serve", "export"):
        args = [command, str(root)] + (["--out", str(tmp_path / "site")] if command == "export" else [])
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and result.output.splitlines() == [f"Error: {expected}"], result.output
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("table, column", [("samples.csv", "block5_pool_heldout_share"),
                                           ("samples.csv", "verdict"), ("training.csv", "split")])
def test_a_missing_column_says_older_version(tmp_path, table, column):
    fixture = make_run(tmp_path)
    _drop_column(fixture.root / table, column)
    _assert_refused_everywhere(fixture.root, tmp_path, f"{table} has no column {column}")


def test_a_summary_without_its_format_says_older_version(tmp_path):
    fixture = make_run(tmp_path)
    path = fixture.root / "summary.json"
    summary = json.loads(path.read_text())
    del summary["format"]
    path.write_text(json.dumps(summary))
    detail = f"summary.json has format none, this version writes {tables.SUMMARY_FORMAT}"
    _assert_refused_everywhere(fixture.root, tmp_path, detail)
    assert RunFolder(fixture.root).table_problems(summary) == [detail]  # so the verdicts' cache recomputes


def test_an_unknown_column_is_read_as_text_and_changes_nothing(tmp_path):
    fixture = make_run(tmp_path)
    before = create_app(Settings(run=fixture.root, cache_dir=tmp_path / "cache"))

    def responses(app) -> list:
        client = TestClient(app)
        return [client.get(url).json() for url in ("/api/samples/g000.png", "/api/training?limit=1000",
                                                   "/api/summary")]

    expected = responses(before)
    for name in ("samples.csv", "training.csv"):
        path = fixture.root / name
        header, rows = tables.raw_rows(path)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[*header, "is_reviewed"], lineterminator="\n")
        writer.writeheader()
        writer.writerows([row | {"is_reviewed": "later"} for row in rows])
        path.write_text(buffer.getvalue(), encoding="utf-8")
    assert responses(create_app(Settings(run=fixture.root, cache_dir=tmp_path / "cache2"))) == expected
    frame = novelty.open_run(fixture.root).training
    assert frame["is_reviewed"].dtype == object and set(frame["is_reviewed"]) == {"later"}
    assert isinstance(frame, pd.DataFrame) and frame["is_near_blank"].sum() == 1


@pytest.mark.slow
def test_the_verdicts_tables_read_back_to_the_same_bytes_and_an_old_summary_is_recomputed(tmp_path):
    """Reader and writer are lossless on what judge_run writes; a summary.json without its format
    is not trusted by the verdicts' cache."""
    from novelty.judge.verdicts import judge_run

    fixture = make_run(tmp_path, verdicts=False, curation=False)
    judge_run(fixture.root, fpr=0.2, plots=False, progress=False)
    for schema in tables.VERDICT_TABLES:
        path = fixture.root / schema.file
        table = tables.read_table(path, schema, {"evidence": LAYERS} if schema is tables.SAMPLES else {})
        assert tables.table_text(schema, table.rows) == path.read_text(encoding="utf-8")
    summary_path = fixture.root / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["format"] == tables.SUMMARY_FORMAT
    del summary["format"]
    summary_path.write_text(json.dumps(summary))
    assert not judge_run(fixture.root, fpr=0.2, plots=False, progress=False).cached
    assert json.loads(summary_path.read_text())["format"] == tables.SUMMARY_FORMAT
