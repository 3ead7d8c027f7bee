#!/usr/bin/env bash
# The prepared GPU check (issue: devices). Run on a machine with a CUDA GPU, from the repo root:
#   bash bench/gpu_check.sh OUT_DIR
# It installs the project (torch from PyPI: a CUDA build), then measures: CLINC150 encoding on GPU vs
# CPU (sentences/s), `fractal train clinc150` on each device (whole process + record timings), one
# full-epoch `fractal finetune clinc150` on the GPU, the matched frozen vs fine-tuned comparison on full
# training data (bench/finetune_matched.py: CLINC150, HWU64, TREC, seed 42, the `finetune` experiment's
# arms without its 2,000-row cap), and the tests that need CUDA. Everything it measured lands in OUT_DIR
# (JSON + logs).
set -uo pipefail
OUT="${1:-gpu-out}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export FRACTAL_DATA="${FRACTAL_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd)}"
export FRACTAL_CACHE="$OUT/cache"
python3 -m venv "$OUT/venv" && "$OUT/venv/bin/pip" install -q -e ".[test,train]" > "$OUT/install.log" 2>&1
PY="$OUT/venv/bin/python"; FR="$OUT/venv/bin/fractal"
"$PY" -c "import torch, json; print(json.dumps({'torch': torch.__version__, 'cuda': torch.cuda.is_available(), 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))" | tee "$OUT/env.json"
for dev in cpu cuda; do  # cold cache per device: the encoding is what is timed
  FRACTAL_CACHE="$OUT/cache-$dev" "$FR" embed clinc150 --device "$dev" --batch-size 256 --json > "$OUT/embed-$dev.json" 2> "$OUT/embed-$dev.log"
done
for dev in cpu cuda; do
  /usr/bin/time -f '%e' -o "$OUT/train-$dev.wall" "$FR" train clinc150 --device "$dev" --out "$OUT/runs/train-$dev" --json > "$OUT/train-$dev.json" 2> "$OUT/train-$dev.log"
done
/usr/bin/time -f '%e' -o "$OUT/finetune-cuda.wall" "$FR" finetune clinc150 --device cuda --epochs 1 --batch-size 64 --out "$OUT/runs/finetune-cuda" --json > "$OUT/finetune-cuda.json" 2> "$OUT/finetune-cuda.log"
"$PY" bench/finetune_matched.py "$OUT/matched" --device cuda --seeds 42 > "$OUT/matched.log" 2>&1
"$PY" -m pytest -q tests/test_cuda.py > "$OUT/pytest-cuda.log" 2>&1
"$PY" - "$OUT" <<'PYEOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1]); summary = {}
for dev in ("cpu", "cuda"):
    try:
        e = json.loads((out / f"embed-{dev}.json").read_text())
        summary[f"embed_{dev}_sentences_per_s"] = {s: v["sentences_per_s"] for s, v in e["splits"].items()}
        r = json.loads((out / f"train-{dev}.json").read_text())
        summary[f"train_{dev}"] = {"S": r["steerability"]["S"], "fine@256": r["accuracy"]["256"], "train_s": r["timing"]["train_s"],
                                   "wall_s": (out / f"train-{dev}.wall").read_text().strip()}
    except Exception as ex:  # noqa: BLE001
        summary[f"error_{dev}"] = repr(ex)
try:
    f = json.loads((out / "finetune-cuda.json").read_text())
    summary["finetune_cuda"] = {"S": f["steerability"]["S"], "accuracy": f["accuracy"], "train_s": f["timing"]["train_s"],
                                "wall_s": (out / "finetune-cuda.wall").read_text().strip()}
except Exception as ex:  # noqa: BLE001
    summary["error_finetune"] = repr(ex)
try:
    summary["finetune_matched"] = [
        {k: r[k] for k in ("dataset", "arm", "S", "train_s")} | {"fine@256": r["accuracy"]["256"]}
        for r in json.loads((out / "matched" / "finetune_matched.json").read_text())
    ]
except Exception as ex:  # noqa: BLE001
    summary["error_matched"] = repr(ex)
summary["pytest_cuda"] = (out / "pytest-cuda.log").read_text().strip().splitlines()[-1:]
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PYEOF
