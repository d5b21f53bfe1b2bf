"""Generator families and their training: the DCGAN, the shared training loop, recipe options, quality tracking, seeded generation."""
