"""One table of defaults. CLI options and function signatures read these; tests keep the README in step.

The GAN defaults come from the 2018 masks project (z = 100, Adam lr 2e-4, beta1 = 0.5); the analysis
defaults from the comparison demo (top-24 per layer at block1_pool and block5_pool).
"""

from __future__ import annotations

# Images and data preparation
IMAGE_SIZES: tuple[int, ...] = (32, 64, 128)
IMAGE_SIZE = 64
FIT_MODES: tuple[str, ...] = ("crop", "pad")
FIT_MODE = "crop"
PAD_COLOR = (255, 255, 255)  # alpha is composited on white, padding uses the same colour
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
)
SHARD_SIZE = 1024  # images per TFRecord shard
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's decompression-bomb limit; larger images are skipped

# DCGAN
Z_DIM = 100
LEARNING_RATE = 2e-4
BETA_1 = 0.5
BATCH_SIZE = 64
BASE_FILTERS = 64  # width of the widest-resolution block; halves the parameters at 32
KERNEL_SIZE = 4
STEPS = 15_000
CHECKPOINT_EVERY = 500
LOG_EVERY = 50
GRID_SIZE = 64  # samples in the fixed-noise grid written at each checkpoint

# Randomness
SEED = 0

# Generation
N_SAMPLES = 100

# Embedding and neighbours
LAYERS: tuple[str, ...] = ("block1_pool", "block5_pool")
TOP_K = 24
WEIGHTS = "imagenet"
PREPROCESS_MODES: tuple[str, ...] = ("caffe", "original")
PREPROCESS = "caffe"
EMBED_BATCH_SIZE = 32

# Verdicts and curation
HOLDOUT_FRACTION = 0.1
FALSE_POSITIVE_RATE = 0.01

# Web demo
HOST = "127.0.0.1"
PORT = 8000
