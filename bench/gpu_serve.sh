#!/usr/bin/env bash
# Served vs offline CLIP on a lent GPU machine through the model engine (its own offline baseline in
# the same run), the JPEG decoders on their own, and the GPU tests. Run by the device tool from the
# repository root with the wheels in $WHL (default .whl; see bench/README.md): results land in $OUT.
set -u
OUT=${OUT:-/tmp/oskit-gpu-out}
WHL=${WHL:-.whl}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PATH=/tmp/site/bin:$PATH
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
nproc; uptime
python3 -c "from nvidia import nvimgcodec; print('nvimgcodec', nvimgcodec.__version__)" || echo "no nvImageCodec: torchvision's nvJPEG"
run_tests() {
  if [ "${TESTS:-1}" = 1 ]; then
  timeout "${TESTS_TIMEOUT:-300}" python3 -m pytest -q -p no:cacheprovider -rfs ${TEST_ARGS:-tests/serve/test_nvdecode.py tests/serve/test_engine.py \
    tests/serve/test_serve_perf_tensor_path.py tests/serve/test_cuda_graphs.py} 2>&1 | tee "$OUT/tests.log" | tail -15
fi
}
if [ "${DECODERS:-1}" = 1 ]; then
  timeout "${DECODE_TIMEOUT:-240}" python3 bench/jpeg_decode.py --images "${DECODE_IMAGES:-2048}" ${DECODE_VARIANTS:+--variants "$DECODE_VARIANTS"} --json "$OUT/jpeg_decode.json" \
    2> "$OUT/jpeg_decode.log" >/dev/null
  cat "$OUT/jpeg_decode.log"
fi
[ "${TESTS_FIRST:-0}" = 1 ] && run_tests
lone=(--no-lone)
[ "${LONE:-0}" = 1 ] && lone=()
# SERVER_ENVS: server variants side by side, separated by '|', each 'K=V;K=V' (bench/serve_throughput.py --server-env)
variants=()
if [ -n "${SERVER_ENVS:-}" ]; then IFS='|' read -ra envs <<< "$SERVER_ENVS"; for e in "${envs[@]}"; do variants+=(--server-env "$e"); done; fi
spy=()
[ "${PY_SPY:-0}" = 1 ] && command -v py-spy >/dev/null && mkdir -p /tmp/spy && spy=(--py-spy /tmp/spy)
timeout "${SERVE_TIMEOUT:-400}" python3 bench/serve_throughput.py --gpu --images "${IMAGES:-8192}" --client-procs 4 \
  --offline-batches "${OFFLINE_BATCHES:-256}" --offline-streams "${OFFLINE_STREAMS:-0,2}" \
  --offline-repeat "${OFFLINE_REPEAT:-3}" "${lone[@]}" --engine on --workers "${ENGINE_WORKERS:-8}" \
  --clients "${CLIENTS:-32,256}" "${variants[@]}" "${spy[@]}" --json "$OUT/engine.json" 2> "$OUT/engine.log" >/dev/null
[ ${#spy[@]} -gt 0 ] && tar czf "$OUT/py-spy.tgz" -C /tmp spy
grep -E '^\{"workers|^offline|Error|error' "$OUT/engine.log" | tail -20
python3 - "$OUT" <<'PY'
import json, sys, pathlib
for f in sorted(pathlib.Path(sys.argv[1]).glob("engine*.json")):
    r = json.loads(f.read_text())
    print(f.name, r.get("gpu"), r.get("decoder"), "offline", r["offline_images_per_s"], r["offline_tried"],
          "medians", r.get("offline_medians"), "split", r["time_split"], "lone", r.get("lone_runs"), r.get("lone_served_p50_ms_batching_on"),
          r.get("lone_served_p50_ms_batching_off"), "load", r["load_average_1m_before_after"])
    for run in r["served_runs"]:
        print("  ", run)
PY
[ "${TESTS_FIRST:-0}" = 1 ] || run_tests
