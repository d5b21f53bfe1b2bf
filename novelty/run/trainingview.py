"""The training set as the curation views show it: one record per TRAINING image, the views
(all, outliers, duplicates, hubs, flagged) and how many images each holds.

:class:`novelty.run.browse.RunView` reads the run folder and calls :func:`training_records`; the web
app filters by :data:`TRAINING_VIEWS` and shows :func:`training_counts` in its tabs and Summary.
"""

from __future__ import annotations

from typing import Any

from novelty import defaults
from novelty.run import tables

# The views of the training set for curation, and which records each holds (see training_records).
TRAINING_VIEWS: dict[str, Any] = {
    "all": lambda row: True,
    "outliers": lambda row: row["is_outlier"],
    "duplicates": lambda row: row["duplicate_group"] is not None,
    "hubs": lambda row: row["is_hub"] or row["is_retrieval_hub"],
    "flagged": lambda row: bool(row["flags"]),
}


# Orders of a view other than the natural id order (stable: ties keep it), and each view's own.
TRAINING_SORTS: dict[str, Any] = {
    "outlier_score": lambda row: -(row["outlier_score"] if row["outlier_score"] is not None else -1e300),
    "times_retrieved": lambda row: -row["times_retrieved"],
    "duplicate_group": lambda row: (row["duplicate_group"] is None, row["duplicate_group"] or ""),
}
DEFAULT_SORT = {"outliers": "outlier_score", "duplicates": "duplicate_group", "hubs": "times_retrieved"}


def view_records(rows: list[dict[str, Any]], view: str, sort: str | None = None) -> list[dict[str, Any]]:
    """The records of ``rows`` that ``view`` holds (:data:`TRAINING_VIEWS`), in ``sort`` order
    (:data:`TRAINING_SORTS`; "id" or None with no :data:`DEFAULT_SORT` for the view: as given)."""
    items = [row for row in rows if TRAINING_VIEWS[view](row)]
    sort = sort or DEFAULT_SORT.get(view, "id")
    return sorted(items, key=TRAINING_SORTS[sort]) if sort in TRAINING_SORTS else items


def training_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many TRAINING images each view holds (images, every one), and the two counts that are not
    images: ``duplicate_groups`` (groups), and the hubs of each kind (``near_hubs``: near many training
    images; ``retrieval_hubs``: retrieved by many samples; an image may be both). The web page's tabs
    and its Summary both show these, so each thing has one number."""
    counts = {name: sum(1 for row in rows if keep(row)) for name, keep in TRAINING_VIEWS.items()}
    counts["duplicate_groups"] = len({row["duplicate_group"] for row in rows if row["duplicate_group"]})
    counts["near_hubs"] = sum(1 for row in rows if row["is_hub"])
    counts["retrieval_hubs"] = sum(1 for row in rows if row["is_retrieval_hub"])
    return counts


def training_records(training_ids: list[str], rows: dict[str, dict[str, Any]],
                     retrieved: dict[str, dict[str, int]], group_members: dict[str, list[str]],
                     flag_names: list[str]) -> list[dict[str, Any]]:
    """One record per TRAINING image in ``training_ids`` order: outlier score, duplicate group, hub
    flags, retrieval counts (per layer), pixel flags.

    ``rows``: ``training.csv``'s typed rows by id (empty without verdicts); ``retrieved[layer][id]``: how
    often the samples' lists hold the image; ``group_members[key]``: the ids of each duplicate group of
    2 or more. Without ``training.csv`` duplicates are identical files and a retrieval hub is retrieved
    ``defaults.HUB_FACTOR`` times more often than chance (as the verdicts define it)."""
    groups = {ident: key for key, ids in group_members.items() for ident in ids}
    retrievals = sum(sum(counts.values()) for counts in retrieved.values())
    hub_at = defaults.HUB_FACTOR * max(1.0, retrievals / max(1, len(training_ids)))
    records = []
    for ident in training_ids:
        row = rows.get(ident, {})
        per_layer = {layer: counts.get(ident, 0) for layer, counts in retrieved.items()}
        times = row.get("times_retrieved")
        times = times if times is not None else sum(per_layer.values())
        group = groups.get(ident)
        records.append({
            "id": ident,
            "outlier_score": rounded(row.get("outlier_score")),
            "is_outlier": bool(row.get("is_outlier")),
            "duplicate_group": group,
            "duplicate_count": len(group_members[group]) if group else 1,
            "times_retrieved": times,
            "retrieved": per_layer,
            "hub_score": rounded(row.get("hub_score")),
            "is_hub": bool(row.get("is_hub")),
            "is_retrieval_hub": bool(row["is_retrieval_hub"]) if "is_retrieval_hub" in row else times >= hub_at,
            "flags": tables.pixel_flags(row, flag_names),
        })
    return records


def rounded(value: float | None, digits: int = 6) -> float | None:
    """A number for a browsing record: ``digits`` decimals, None kept."""
    return None if value is None else round(float(value), digits)
