"""One table of defaults. CLI options and function signatures read these; tests keep the README in step.

The GAN defaults come from the 2018 masks project (z = 100, Adam lr 2e-4, beta1 = 0.5); the analysis
defaults from the comparison demo (top-24 per layer at block1_pool and block5_pool).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

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
EMA = 0.999  # decay of the generator's moving average, sampled and saved (0: off); measured better on the masks (README)
DIFFAUGMENT = ""  # DiffAugment policies, comma-separated (color,translation,cutout); "" = off
LABEL_SMOOTHING = 0.0  # one-sided: the discriminator's target for real images is 1 - this
QUALITY_EVERY = 1000  # steps between block5_pool PRDC evaluations while training (0: off)
QUALITY_SAMPLES = 256  # fixed-noise samples, and training images, per evaluation

# pix2pix (Isola et al., 2017; the TensorFlow pix2pix tutorial)
PAIR_IMAGE_SIZES: tuple[int, ...] = (32, 64, 128, 256)  # pix2pix also trains at 256 (8 down / 7 up)
PAIR_DIRECTION = "AtoB"  # A (left half, or folder A/) is the generator's input
L1_LAMBDA = 100.0  # weight of the L1 term of the generator's loss
BOTTLENECK_DENSE = 0  # fully connected layers at the U-Net's 1x1 bottleneck
PAIR_HOLDOUT = 0.1  # share of the pairs kept aside for judging (0: none)
PAIR_JITTER_SCALE = 286 / 256  # pix2pix jitter: resize to this many times the size, random crop back
PAIR_GRID_ROWS = 8  # input | generated | target rows in the grid beside each checkpoint

# Randomness
SEED = 0

# Generation
N_SAMPLES = 100

# Embedding and neighbours
LAYERS: tuple[str, ...] = ("block1_pool", "block5_pool")
TOP_K = 24
TOPK_GENERATED_CHUNK = 4096  # exact top-k: generated rows per block (benchmarks/bench_topk.py)
TOPK_TRAINING_CHUNK = 1024  # exact top-k: training rows per block
TOPK_BLOCK_BYTES = 256 * 1024 * 1024  # exact top-k: at most this many bytes of features per side per block
WEIGHTS = "imagenet"
PREPROCESS_MODES: tuple[str, ...] = ("caffe", "original")
PREPROCESS = "caffe"
EMBED_BATCH_SIZE = 32
INPUT_SIZE = 64  # analyze: every image is fitted (crop) to this square before VGG16; the 2018 demo used 64
FEATURE_DTYPES: tuple[str, ...] = ("float16", "float32")
FEATURE_DTYPE = "float16"  # feature-store storage; a layer whose values do not fit float16 is kept float32
BLOCK1_REDUCE = "none"  # or "pool:N": average-pool block1_pool by N x N before flattening
INDEX = "auto"  # neighbour search backend: exact (numpy, blocked), faiss (HNSW), auto (by training-set size)
FAISS_AUTO_TRAINING = 50_000  # --index auto: FAISS from this many training images on, exact below
EXACT_MAX_TRAINING = 1_000_000  # exact search over this many training images is refused unless asked for by name
FAISS_ANN_MIN_TRAINING = 20_000  # FAISS: a flat (exact) index below this many training rows, HNSW from it on
FAISS_HNSW_M = 32  # HNSW: links per node
FAISS_HNSW_EF_CONSTRUCTION = 80  # HNSW: candidate list while building
FAISS_GRAPH_FLOAT32_MAX_BYTES = 4 * 2**30  # HNSW: rows kept float32 in the graph up to this size, float16 beyond
FAISS_HNSW_EF_SEARCH = 64  # HNSW: candidate list while searching up to 100k rows, doubled per tenfold beyond (and >= k)
RECALL_QUERIES = 1000  # approximate search: recall@24 against exact search on this many seeded random queries

# Verdicts and curation
HOLDOUT_FRACTION = 0.1
CLOSEST_HELDOUT = 8  # closest held-out pairs listed in summary.json and plotted
PLOT_THUMBNAIL = 96  # px, images in plots
FALSE_POSITIVE_RATE = 0.01
PRDC_K = 5  # Naeem et al. (2020) recommend k = 5
MIN_SET_SIZE = 1000  # below this many samples per side, PRDC and C_T carry a warning
CT_MIN_CELL_SAMPLES = 20  # C_T skips cells with fewer generated or held-out points (Meehan et al.'s tau)
CT_MAX_CELLS = 10  # k-means cells for C_T, fewer when samples are scarce
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95  # level of every reported interval
OUTLIER_K = 5  # outlier score's smallest scale: distance to the k-th nearest distinct training image
OUTLIER_SCALES: tuple[int, ...] = tuple(OUTLIER_K * 2**i for i in range(6))  # outlier score: k = 5 .. 160
OUTLIER_MAX_SHARE = 0.1  # outlier score: scales up to this share of the set (a larger group is a mode, not junk)
OUTLIER_PCA = 32  # outlier score's global view: Hotelling T^2 on this many principal components of the deepest layer
PCA_FIT_MAX = 20_000  # principal components (outlier score, C_T cells) of a larger set: fitted on a seeded subsample
OUTLIER_Z = 2.5  # is_outlier: outlier_score above this (about 1% of the masks without junk)
DUPLICATE_Z = 3.5  # near-duplicate pairs: nearest-neighbour log-distance this far below typical
CURATION_SKETCH = 4096  # curation's self-search runs a layer longer than this on its sketch:CURATION_SKETCH (0: exact)
CURATION_SLACK = 2.0  # sketched layer: duplicate candidates up to this many times its threshold distance; exact cosines decide
HUB_FACTOR = 5.0  # hub: retrieved into top-k lists this many times more often than chance
BORDERLINE_RATE = 0.05  # verdict "borderline": not a copy, but closer than all but this share of unseen images
VALIDATE_COPIES = 100  # validate: training images copied in each way (exact, flip, crop, jitter, jpeg)
VALIDATE_UNSEEN_FRACTION = 0.1  # validate: share of the images set aside as unseen real samples
QUALITY_THRESHOLDS = {  # pixel flags: score in [0, 1] (higher = worse) at or above which an image is flagged
    "near_blank": 0.95, "very_dark": 0.75, "low_information": 0.75, "odd_aspect_ratio": 0.5,
}

# Web demo
HOST = "127.0.0.1"
PORT = 8000
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a query image larger than this is refused (413)
MAX_UPLOAD_PIXELS = 25_000_000  # a query image with more pixels is refused before decoding
THUMB_SIZE = 128  # gallery thumbnails: longer side in pixels (smaller images are served as they are)


# Allowed ranges of every number a user gives, on the command line or to the library. Checked at the
# edge, before any work: novelty.bounds.check for the library, the CLI's option types are built from
# this table too (tests/test_flags.py walks every numeric flag). An upper bound keeps a typo like
# `--n 99999999999999999999` from starting work that cannot fit.
@dataclass(frozen=True)
class Range:
    """``low <= x <= high`` (``<`` where open); integers when both bounds are ints."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return bool(above and below)  # False for nan, which compares false with both bounds

    def __str__(self) -> str:  # click's notation, so the CLI and the library word a range alike
        return f"{self.low}{'<' if self.low_open else '<='}x{'<' if self.high_open else '<='}{self.high}"


MAX_STEPS = 10_000_000
RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1),  # numpy's global seed (keras.utils.set_random_seed) takes 0 .. 2**32 - 1
    "shard_size": Range(1, 1_000_000),
    "steps": Range(1, MAX_STEPS),
    "checkpoint_every": Range(1, MAX_STEPS),
    "log_every": Range(1, MAX_STEPS),
    "batch_size": Range(1, 4096),  # training, global
    "learning_rate": Range(0.0, 1.0, low_open=True),
    "beta_1": Range(0.0, 1.0, high_open=True),
    "ema": Range(0.0, 1.0, high_open=True),  # 0 = off
    "label_smoothing": Range(0.0, 0.5, high_open=True),  # at 0.5 real and fake targets would meet
    "quality_every": Range(0, MAX_STEPS),  # 0 = off
    "quality_samples": Range(2 * PRDC_K, 10_000),
    "z_dim": Range(1, 1024),
    "base_filters": Range(1, 512),  # 8x the default width: about 64x its parameters
    "n_samples": Range(1, 100_000),  # generate holds them in memory: 1.2 GB at 64 px, 4.9 GB at 128 px
    "top_k": Range(1, 1000),
    "input_size": Range(32, 512),  # VGG16 needs 32; block1_pool at 512 px is 4.2M values per image
    "embed_batch_size": Range(1, 1024),
    "block1_pool": Range(2, 256),  # --block1-reduce pool:N
    "block1_sketch": Range(16, 65_536),  # --block1-reduce sketch:D; at most block1_pool's length at 64 px
    "holdout_fraction": Range(0.0, 1.0, low_open=True, high_open=True),
    "false_positive_rate": Range(0.0, 1.0, low_open=True, high_open=True),
    "validate_copies": Range(1, 100_000),
    "unseen_fraction": Range(0.0, 1.0, low_open=True, high_open=True),
    "port": Range(0, 65535),
    "l1_lambda": Range(0.0, 10_000.0),
    "bottleneck_dense": Range(0, 8),
    "pair_holdout": Range(0.0, 0.5),  # 0 = none
}
