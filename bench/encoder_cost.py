"""What each offline encoder costs: output dims, weight bytes and encoding speed on this machine.

    python bench/encoder_cost.py [--n 1000] [--repeats 3] [--dataset clinc150] [--out results/cross-encoder]

Encodes the same ``n`` test texts with every offline encoder (cache off, each encoder's default
backend), round-robin over ``repeats`` rounds, and writes ``OUT/encoder_cost.json``: per encoder the
median sentences/s, its ratio to MiniLM-L6 measured in the same rounds, dims and weight bytes. The
report's "Across encoders" section reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ENCODERS = ("minilm-l6", "minilm-l6-int8", "paraphrase-minilm-l3", "mpnet-base")


def weight_bytes(enc) -> int:  # noqa: ANN001 - an Encoder
    rm = enc.resolved
    if rm.onnx_path is not None:
        return rm.onnx_path.stat().st_size
    assert rm.folder is not None
    return sum(p.stat().st_size for p in rm.folder.iterdir() if p.suffix in (".safetensors", ".bin"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--out", default="results/cross-encoder")
    args = ap.parse_args()

    from fractal_embeddings import Encoder, load_dataset

    texts = load_dataset(args.dataset).split("test").texts[: args.n]
    encoders = {name: Encoder(name) for name in ENCODERS}
    for enc in encoders.values():
        enc.encode(texts[:32])  # load, export and warm up outside the timed rounds
    speeds: dict[str, list[float]] = {name: [] for name in ENCODERS}
    for _ in range(args.repeats):
        for name, enc in encoders.items():
            t0 = time.perf_counter()
            enc.encode(texts)
            speeds[name].append(len(texts) / (time.perf_counter() - t0))
    base = speeds["minilm-l6"]
    rows = {}
    for name, enc in encoders.items():
        ratios = [s / b for s, b in zip(speeds[name], base, strict=True)]
        rows[name] = {
            "model": enc.resolved.name,
            "backend": enc.backend,
            "dim": int(enc.encode(texts[:1]).shape[1]),
            "weight_bytes": weight_bytes(enc),
            "sentences_per_s": round(statistics.median(speeds[name]), 1),
            "vs_minilm_l6": round(statistics.median(ratios), 3),
        }
    result = {
        "dataset": args.dataset,
        "texts": len(texts),
        "repeats": args.repeats,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "encoders": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoder_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
