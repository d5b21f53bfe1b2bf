""""More like these": the ranking rule on planted features, the CLI and its ranked.csv."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from webhelpers import make_run

from novelty.cli import main as cli
from novelty.curate.morelike import RANKED_COLUMNS, RANKED_FILE, likeness_scores, rank_ids
from novelty.errors import NoveltyError


def _planted(seed: int = 0, n: int = 400, group: int = 12, dim: int = 64):
    """Two layers of a Gaussian bulk with a planted tight group (rows 0..group-1) off to one side."""
    rng = np.random.default_rng(seed)
    features = {}
    for layer in ("block1_pool", "block5_pool"):
        x = rng.normal(size=(n, dim)) + 3.0  # a bulk all in one direction, like ReLU features
        centre = rng.normal(size=dim) * 3.0 + 3.0
        x[:group] = centre + rng.normal(scale=1.0, size=(group, dim))
        features[layer] = x.astype(np.float32)
    return features, group


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_examples_find_the_rest_of_a_planted_group(seed):
    features, group = _planted(seed)
    score = likeness_scores(features, [0, 1, 2])
    rest = set(range(3, group))
    top = set(np.argsort(-score)[: 2 * group].tolist())
    assert len(rest & top) / len(rest) >= 0.9
    assert np.all(np.isneginf(score[[0, 1, 2]]))  # examples are not candidates


def test_not_ids_push_their_look_alikes_down():
    features, group = _planted(0)
    plain = likeness_scores(features, [0, 1, 2])
    away = likeness_scores(features, [0, 1, 2], not_examples=[3, 4])
    rest = np.arange(5, group)
    # the group is alike among itself: ranking away from two of its members lowers the others
    assert np.mean(away[rest]) < np.mean(plain[rest])
    assert np.all(np.isneginf(away[[3, 4]]))


def test_unknown_ids_are_named_in_one_line():
    features, _ = _planted(0, n=20, group=4)
    ids = [f"t{i}" for i in range(20)]
    with pytest.raises(NoveltyError) as info:
        rank_ids(features, ids, ["t1", "nope.png"], ["gone.png"])
    message = str(info.value)
    assert "'nope.png'" in message and "'gone.png'" in message and "\n" not in message
    assert "'t1'" not in message


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("morelike"))


def test_cli_writes_ranked_csv_without_the_examples(run, tmp_path):
    examples = tmp_path / "examples.txt"
    examples.write_text("# one of a duplicate pair\ndup/a.png\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["more-like", str(run.root), str(examples)])
    assert result.exit_code == 0, result.output
    with open(run.root / RANKED_FILE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == RANKED_COLUMNS
    ids = [r["id"] for r in rows]
    assert "dup/a.png" not in ids and len(ids) == len(run.training_ids) - 1
    assert ids[0] == "dup/b.png"  # its identical copy comes first
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    lines = result.output.strip().splitlines()
    assert len(lines) == 11 and "dup/b.png" in lines[0] and ids[9] in lines[9]


def test_cli_not_list_and_out(run, tmp_path):
    examples, nots, out = tmp_path / "ex.txt", tmp_path / "not.txt", tmp_path / "ranked.csv"
    examples.write_text("dup/a.png\n", encoding="utf-8")
    nots.write_text("dup/b.png\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["more-like", str(run.root), str(examples), "--not", str(nots), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in csv.DictReader(out.open(encoding="utf-8"))]
    assert "dup/a.png" not in ids and "dup/b.png" not in ids and len(ids) == len(run.training_ids) - 2


def test_cli_unknown_ids_one_line_error(run, tmp_path):
    examples = tmp_path / "ex.txt"
    examples.write_text("dup/a.png\nmissing.png\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["more-like", str(run.root), str(examples), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "'missing.png'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.csv").exists()


def test_api_route_ranks_with_curation_rows(run, tmp_path):
    from fastapi.testclient import TestClient
    from webhelpers import assert_error

    from webdemo import Settings, create_app

    client = TestClient(create_app(Settings(run=run.root, cache_dir=tmp_path / "cache")))
    response = client.post("/api/training/more-like", json={"examples": ["dup/a.png"], "limit": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(run.training_ids) - 1
    assert [item["rank"] for item in body["items"]] == [1, 2, 3, 4, 5]
    assert body["items"][0]["id"] == "dup/b.png" and body["items"][0]["duplicate_count"] == 2
    away = client.post("/api/training/more-like", json={"examples": ["dup/a.png"], "not": ["dup/b.png"]}).json()
    assert "dup/b.png" not in [item["id"] for item in away["items"]]
    error = assert_error(client.post("/api/training/more-like", json={"examples": ["nope.png"]}), 422)
    assert "'nope.png'" in error["message"]
    assert_error(client.post("/api/training/more-like", json={"examples": []}), 422)
