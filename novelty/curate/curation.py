"""Training-set curation: one import for the rules that judge a TRAINING set, each in its own module.

- :mod:`novelty.curate.duplicates`: near-duplicate groups (the duplicate rule) and hubs;
- :mod:`novelty.curate.outliers`: the batch-aware outlier rule;
- :mod:`novelty.curate.pixels`: pixel-level flags (near blank, very dark, low information, odd
  aspect ratio).

The verdict stage (:mod:`novelty.judge.verdicts`) and the tests read them all through this module.
"""

from __future__ import annotations

from novelty.curate.duplicates import (
    MIN_DISTANCE,
    DuplicateRule,
    curation_view,
    curation_views,
    duplicate_components,
    duplicate_groups,
    duplicate_rule,
    group_numbers,
    k_occurrence,
    nearest_similarity,
    pair_similarity,
    robust_z,
    self_neighbours,
)
from novelty.curate.outliers import (
    Outliers,
    batch_outliers,
    combined_score,
    hotelling_z,
    outlier_depth,
    outlier_distance,
    outlier_scales,
    outlier_scores,
    outlier_stage,
)
from novelty.curate.pixels import (
    QUALITY_FLAGS,
    THUMBNAIL,
    PixelScores,
    aspect_ratio_score,
    pixel_scores,
    quality_flags,
    thumbnail,
)

__all__ = [
    "MIN_DISTANCE", "QUALITY_FLAGS", "THUMBNAIL", "DuplicateRule", "Outliers", "PixelScores",
    "aspect_ratio_score", "batch_outliers", "combined_score", "curation_view", "curation_views", "duplicate_components", "duplicate_groups", "duplicate_rule",
    "group_numbers", "hotelling_z", "k_occurrence", "outlier_depth", "outlier_distance", "outlier_scales",
    "nearest_similarity", "outlier_scores", "outlier_stage", "pair_similarity", "pixel_scores", "quality_flags",
    "robust_z", "self_neighbours", "thumbnail",
]
