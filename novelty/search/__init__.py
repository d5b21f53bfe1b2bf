"""Nearest TRAINING images of GENERATED samples (and of an uploaded query), and the neighbour-list format."""
