"""The curation views' records: from training.csv when the run has one, else from the neighbour lists."""

from __future__ import annotations

from novelty import defaults
from novelty.run.trainingview import TRAINING_VIEWS, training_counts, training_records, view_records


def test_without_training_csv_a_retrieval_hub_is_retrieved_hub_factor_times_chance():
    ids = [f"t{i}.png" for i in range(10)]
    retrieved = {"block1_pool": {"t0.png": 17, "t1.png": 1}, "block5_pool": {"t0.png": 3, "t2.png": 1}}
    # 22 retrievals over 10 images: chance 2.2 per image, so a hub needs HUB_FACTOR * 2.2
    records = training_records(ids, {}, retrieved, {"sha:ab": ["t3.png", "t4.png"]}, [])
    by_id = {record["id"]: record for record in records}
    assert [record["id"] for record in records] == ids
    assert by_id["t0.png"]["retrieved"] == {"block1_pool": 17, "block5_pool": 3}
    assert by_id["t0.png"]["times_retrieved"] == 20
    hubs = {ident for ident, record in by_id.items() if record["is_retrieval_hub"]}
    assert hubs == ({"t0.png"} if 20 >= defaults.HUB_FACTOR * 2.2 else set())
    assert by_id["t3.png"]["duplicate_group"] == "sha:ab" and by_id["t3.png"]["duplicate_count"] == 2
    assert by_id["t5.png"]["duplicate_group"] is None and by_id["t5.png"]["duplicate_count"] == 1
    counts = training_counts(records)
    assert counts["duplicates"] == 2 and counts["duplicate_groups"] == 1 and counts["all"] == 10
    assert counts["hubs"] == len(hubs) == counts["retrieval_hubs"]


def test_training_csv_rows_win_over_the_lists():
    row = {"outlier_score": 3.14159265, "is_outlier": True, "times_retrieved": 0, "is_retrieval_hub": False,
           "hub_score": 0.5, "is_hub": True, "is_dark": True, "is_blank": False}
    records = training_records(["a.png"], {"a.png": row}, {"block1_pool": {"a.png": 50}}, {}, ["dark", "blank"])
    record = records[0]
    assert record["outlier_score"] == 3.141593 and record["times_retrieved"] == 0
    assert not record["is_retrieval_hub"] and record["is_hub"] and record["flags"] == ["dark"]
    assert [name for name, keep in TRAINING_VIEWS.items() if keep(record)] == ["all", "outliers", "hubs", "flagged"]


def test_each_view_has_its_own_order_and_ties_keep_the_id_order():
    records = training_records([f"t{i}.png" for i in range(4)], {
        "t0.png": {"outlier_score": 1.0, "is_outlier": True, "times_retrieved": 2},
        "t1.png": {"outlier_score": None, "is_outlier": False, "times_retrieved": 9},
        "t2.png": {"outlier_score": 3.0, "is_outlier": True, "times_retrieved": 2},
        "t3.png": {"outlier_score": 1.0, "is_outlier": True, "times_retrieved": 0}}, {}, {}, [])
    ids = lambda rows: [row["id"] for row in rows]  # noqa: E731
    assert ids(view_records(records, "outliers")) == ["t2.png", "t0.png", "t3.png"]  # highest score first
    assert ids(view_records(records, "all")) == ["t0.png", "t1.png", "t2.png", "t3.png"]
    assert ids(view_records(records, "all", "outlier_score")) == ["t2.png", "t0.png", "t3.png", "t1.png"]
    assert ids(view_records(records, "all", "times_retrieved")) == ["t1.png", "t0.png", "t2.png", "t3.png"]
