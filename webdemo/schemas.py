"""Response models: they document the API (OpenAPI at /docs) and pin its JSON shapes in tests.

Routes build plain dicts (``novelty.run.browse`` records) and return them as JSON directly for speed;
these models describe the same shapes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LayerScore(BaseModel):
    nearest: str | None = Field(description="Id of the nearest TRAINING image at this layer")
    similarity: float | None = Field(description="Cosine similarity to it (1 = identical features)")
    calibrated: float | None = Field(
        description="Calibrated score in 0..1: share of held-out (unseen) training images whose nearest "
                    "training image is less similar than this (1 - heldout_share); null without calibration")
    p_value: float | None = Field(description="Conformal p-value of this layer alone (samples.csv)")


class Agreement(BaseModel):
    layers: list[str]
    shared: int = Field(description="Training ids found in the top-k of both layers")
    k: int
    jaccard: float = Field(description="Jaccard index of the two top-k lists (the run's layer_agreement)")
    top1_same: bool


class AlignedMatch(LayerScore):
    """The aligned pixel match: the training image whose pixels line up best with the sample's."""

    mirrored: bool = Field(description="The sample's mirror image lines up, not the sample itself")
    scale: float | None = Field(description="Share of each side the cropped image keeps (1: same framing)")
    crop: str | None = Field(description="Which image is the crop of the other: 'sample' or 'training'")
    level: float = Field(description="The score above which the match is evidence of a crop or rescale")
    level_from: str = Field(description="'heldout': the run's calibrated threshold for the match alone; "
                                        "'stated': a fixed level, where the run has no threshold")
    evident: bool = Field(description="similarity > level: the pixels line up better than unseen real images'")


class Identical(BaseModel):
    id: str = Field(description="The TRAINING image the sample is identical to")
    kind: str | None = Field(description="'same file', 'same pixels' or 'mirrored pixels'")


class Conditional(BaseModel):
    """A conditional (pix2pix) run's output beside its input and its own ground truth."""

    input: str | None = Field(description="The input image's id (api/images/input/<id>)")
    truth: str | None = Field(description="Its ground-truth target's id (api/images/truth/<id>); null: none known")
    truth_split: str | None = Field(description="heldout or trained: the truth's pair in the checkpoint's training")
    follows_truth: bool | None = Field(description="At least as close to its truth as to any training target "
                                                   "(then never a copy)")
    truth_similarity: dict[str, float | None] = Field(description="Per layer: cosine similarity of output and truth")
    truth_rank: dict[str, int | None] = Field(description="Per layer: the truth's place among the neighbours "
                                                          "(k + 1: below all)")


class Sample(BaseModel):
    id: str
    verdict: str | None = Field(description="copy, borderline or novel (samples.csv); null before verdicts")
    copy_score: float | None = Field(description="1 - copy_p_value: the combined calibrated copy evidence")
    copy_p_value: float | None
    novelty: float | None = Field(description="1 - similarity to the nearest training image at the deepest layer")
    duplicate_group: str | None = Field(description="Group of near-identical generated samples, if any")
    layers: dict[str, LayerScore]
    aligned: AlignedMatch | None = Field(
        description="Aligned pixel match (crops, rescales, mirror images); null when the run has none")
    identical: Identical | None = Field(description="The training image the sample is identical to, if any")
    agreement: Agreement | None
    conditional: Conditional | None = Field(description="Conditional runs: input and ground truth; null otherwise")


class SampleList(BaseModel):
    total: int
    items: list[Sample]
    verdicts: dict[str, int]
    layers: list[str]


class SampleDetail(Sample):
    index: int = Field(description="Position of the sample in id order")
    previous: str | None
    next: str | None


class Neighbour(BaseModel):
    rank: int
    id: str
    similarity: float
    calibrated: float | None
    group: str | None = Field(description="Duplicate group of this training image, null if unique")


class NeighbourTile(Neighbour):
    ids: list[str] = Field(description="Members of the duplicate group found in this list")
    count: int = Field(description="How many entries of the list this tile stands for")
    group_size: int = Field(description="Size of the whole duplicate group in the training set")


class QueryLayer(BaseModel):
    """The top-k TRAINING neighbours of one image at one layer: each entry, and duplicates as tiles."""

    layer: str
    label: str
    description: str
    k: int
    neighbors: list[Neighbour]
    groups: list[NeighbourTile]


class NeighbourList(QueryLayer):
    sample: str


class TrainingImage(BaseModel):
    id: str
    outlier_score: float | None
    is_outlier: bool
    duplicate_group: str | None
    duplicate_count: int
    times_retrieved: int
    retrieved: dict[str, int]
    hub_score: float | None
    is_hub: bool
    is_retrieval_hub: bool
    flags: list[str]


class TrainingList(BaseModel):
    total: int
    offset: int
    items: list[TrainingImage]
    counts: dict[str, int]
    flags: list[str]



class MoreLikeRequest(BaseModel):
    examples: list[str] = Field(min_length=1, max_length=10_000, description="Training ids to find more of")
    not_ids: list[str] = Field(default_factory=list, max_length=10_000, alias="not",
                               description="Training ids to rank away from")
    limit: int = Field(200, ge=1, le=100_000)


class MoreLikeItem(TrainingImage):
    score: float
    rank: int


class MoreLikeResult(BaseModel):
    total: int
    items: list[MoreLikeItem]

class Summary(BaseModel):
    run: dict
    layers: list[dict]
    counts: dict[str, int]
    verdicts: dict[str, int]
    has_verdicts: bool
    has_curation: bool
    training_counts: dict[str, int]
    statistics: dict
    plots: list[str]
    search_index: dict | None = None  # the search backend; with FAISS its measured recall@24 (summary.json)


class QueryResult(BaseModel):
    filename: str | None
    width: int
    height: int
    seconds: float
    layers: dict[str, QueryLayer]


class GenerateResult(QueryResult):
    """Upload-to-generate: the uploaded input's output by the run's generator, and the output's neighbours."""

    output: str = Field(description="The output as a data: URL (PNG)")
    output_size: int = Field(description="Its side in pixels (the checkpoint's size)")
    generate_seconds: float = Field(description="Seconds to fit and translate the input (loading the "
                                                "generator included on the first upload)")
