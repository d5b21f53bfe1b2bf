"""The web demo on a conditional (pix2pix) run: input | output | ground truth per sample, and
upload-to-generate (the run's generator, then the output's neighbours), with bad uploads refused."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from webhelpers import LAYERS, assert_error, make_run, png_bytes

from webdemo import Settings, create_app
from webdemo.schemas import GenerateResult, SampleDetail

pytestmark = pytest.mark.slow  # the session's conditional run: a real analyze with random VGG weights


@pytest.fixture(scope="module")
def client(conditional_run, tmp_path_factory):
    return TestClient(create_app(Settings(run=conditional_run.root, cache_dir=tmp_path_factory.mktemp("cache"),
                                          max_upload_bytes=200_000)))


def test_each_sample_carries_its_input_and_ground_truth(conditional_run, client) -> None:
    items = client.get("/api/samples").json()["items"]
    assert sorted(item["id"] for item in items) == sorted(conditional_run.held)
    assert client.get("/api/summary").json()["run"]["conditional"] is True
    sample = SampleDetail.model_validate(client.get(f"/api/samples/{conditional_run.held[0]}").json())
    conditional = sample.conditional
    assert conditional.input == conditional.truth == conditional_run.held[0] and conditional.truth_split == "heldout"
    assert set(conditional.truth_similarity) == set(LAYERS) and all(1 <= r <= 25 for r in conditional.truth_rank.values())
    for kind in ("input", "truth", "generated"):
        response = client.get(f"/api/images/{kind}/{conditional_run.held[0]}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    truth = np.asarray(Image.open(io.BytesIO(client.get(f"/api/images/truth/{conditional.truth}").content)))
    assert truth.shape[:2] == (32, 32)
    assert_error(client.get("/api/images/truth/not-a-truth.png"), 404)
    assert_error(client.get("/api/images/input/..%2Frun.json"), 404)
    training = client.get("/api/training").json()["items"]
    assert not {row["id"] for row in training} & set(conditional_run.held)  # the held-out targets are not training


def test_an_uploaded_input_is_translated_and_its_output_searched(conditional_run, client) -> None:
    data = (conditional_run.inputs / conditional_run.held[0]).read_bytes()
    body = client.post("/api/query/generate", files={"file": ("edge.png", data, "image/png")}).json()
    result = GenerateResult.model_validate(body)
    assert result.filename == "edge.png" and result.output_size == 32
    output = np.asarray(Image.open(io.BytesIO(base64.b64decode(result.output.split(",", 1)[1]))))
    stored = np.asarray(Image.open(conditional_run.root / "generated" / "samples" / conditional_run.held[0]))
    assert np.array_equal(output, stored)  # the run's own generator, as `generate --inputs` ran it
    for layer in LAYERS:
        assert len(result.layers[layer].neighbors) == 24
    again = client.post("/api/query/generate", params={"k": 3}, files={"file": ("edge.png", data)}).json()
    assert again["output"] == body["output"] and len(again["layers"]["block5_pool"]["neighbors"]) == 3


def test_upload_to_generate_rejects_bad_uploads(client, png_header) -> None:
    good = png_bytes(np.zeros((32, 32, 3), np.uint8))
    url = "/api/query/generate"
    assert_error(client.post(url, json={"file": "x"}), 415)
    assert_error(client.post(url, files={"other": ("a.png", good)}), 422)
    assert_error(client.post(url, files={"file": ("a.txt", b"hello, not an image")}), 415)
    assert_error(client.post(url, files={"file": ("a.png", good[: len(good) // 2])}), 422)
    assert "too large" in assert_error(client.post(url, files={"file": ("b.png", png_header(20000, 20000))}), 422)["message"]
    assert_error(client.post(url, files={"file": ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(300_000))}), 413)
    assert_error(client.post(url, params={"k": 99}, files={"file": ("a.png", good)}), 422)


def test_a_run_that_is_not_conditional_cannot_generate(tmp_path) -> None:
    fixture = make_run(tmp_path)
    client = TestClient(create_app(Settings(run=fixture.root, cache_dir=tmp_path / "cache")))
    assert client.get("/api/samples/g000.png").json()["conditional"] is None
    error = assert_error(client.post("/api/query/generate", files={"file": ("a.png", png_bytes(np.zeros((32, 32, 3),
                                                                                                  np.uint8)))}),
                         503, "generate_unavailable")
    assert "no pix2pix checkpoint" in error["message"]
    assert_error(client.get("/api/images/input/g000.png"), 404)


def test_the_static_export_carries_inputs_and_ground_truths(conditional_run, tmp_path) -> None:
    import json

    from webdemo.export import export_site

    index = export_site(conditional_run.root, tmp_path / "site", progress=False)
    text = (index.parent / "data.js").read_text(encoding="utf-8")
    data = json.loads(text[text.index("{"): text.rindex("}") + 1])
    for kind in ("input", "truth"):
        assert set(data["images"][kind]) == set(conditional_run.held)
        assert all((index.parent / full).is_file() for full, _ in data["images"][kind].values())
