#!/usr/bin/env bash
# Served vs offline CLIP on a lent GPU machine, model engine vs one model per worker, each in one
# bench run (its own offline baseline). Run by the device tool from the repository root with the
# wheels in .whl (see bench/README.md): results land in $OUT.
set -u
OUT=${OUT:-/tmp/oskit-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
nproc; uptime
if [ "${TESTS:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/serve/test_engine.py tests/serve/test_serve_perf_tensor_path.py -rf 2>&1 | tail -8
fi
common=(--gpu --images "${IMAGES:-8192}" --client-procs 4 --offline-batches "${OFFLINE_BATCHES:-256}"
        --offline-streams "${OFFLINE_STREAMS:-2,4}" --offline-repeat "${OFFLINE_REPEAT:-2}" --no-lone)
streams=()
[ -n "${ENGINE_STREAMS:-}" ] && streams=(--engine-streams "$ENGINE_STREAMS")
python3 bench/serve_throughput.py "${common[@]}" --engine on --workers "${ENGINE_WORKERS:-4,8}" \
  --clients "${CLIENTS:-32,256}" "${streams[@]}" --json "$OUT/engine.json" 2> "$OUT/engine.log" >/dev/null
grep -E '^\{"workers|^offline' "$OUT/engine.log"
if [ "${COMPARE:-1}" = 1 ]; then
  python3 bench/serve_throughput.py "${common[@]}" --engine off --workers 8 --clients "${CLIENTS:-32,256}" \
    --json "$OUT/no-engine.json" 2> "$OUT/no-engine.log" >/dev/null
  grep -E '^\{"workers|^offline' "$OUT/no-engine.log"
fi
python3 - "$OUT" <<'PY'
import json, sys, pathlib
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(f.read_text())
    print(f.name, "offline", r["offline_images_per_s"], r["offline_tried"], "medians", r.get("offline_medians"), "split", r["time_split"],
          "load", r["load_average_1m_before_after"])
    for run in r["served_runs"]:
        print("  ", run)
PY
