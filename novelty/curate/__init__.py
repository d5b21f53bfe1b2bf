"""Curation of the training set: outliers, near-duplicates, more-like-these, quarantine (never delete)."""
