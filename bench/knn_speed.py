"""Prefix k-NN speed: 2,000 rows x 4 prefixes x 2 levels (target <= 0.3 s). Median of 7 runs.

python bench/knn_speed.py
"""

import json
import statistics
import time

import numpy as np

from fractal_embeddings.evaluation import prefix_knn_accuracy

rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 256)).astype(np.float32)
y = np.stack([rng.integers(0, 10, 2000), rng.integers(0, 150, 2000)], axis=1)
prefix_knn_accuracy(X, y)
runs = []
for _ in range(7):
    t0 = time.perf_counter()
    prefix_knn_accuracy(X, y)
    runs.append(time.perf_counter() - t0)
print(
    json.dumps(
        {
            "rows": 2000,
            "prefixes": 4,
            "levels": 2,
            "median_s": round(statistics.median(runs), 4),
            "runs_s": [round(r, 4) for r in runs],
        }
    )
)
