"""Embedding: genuine VGG16 ImageNet weights, features per layer, and the run's content-keyed feature store."""
