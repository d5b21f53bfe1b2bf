"""Nearest TRAINING images of GENERATED samples (and of an uploaded query), and the neighbour-list
format; every search goes through one backend interface (:mod:`novelty.search.backends`: exact, FAISS)."""
