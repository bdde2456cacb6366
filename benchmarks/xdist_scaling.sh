#!/usr/bin/env bash
# The benchmark suite under pytest-xdist at -n 0, then each -n in WORKERS, on the GPUs this host
# has: one fresh results dir per run, so every run tunes cold. Writes into OUT (default
# ./xdist-scaling): nvidia-smi's GPU list, and per run its pytest log, its results dir
# (xdist_runs.jsonl: worker, CUDA_VISIBLE_DEVICES, PCI id, UUID, lock wait) and its wall time.
#
#   CASES=matmul_32x8192x1024,swiglu_16x14336 WORKERS="2 4" bash benchmarks/xdist_scaling.sh
#
# Environment: CASES (BENCH_CASES, default quick), STRATEGIES (default "default,seeded"),
# WORKERS (default "2 4"), RUN_TIMEOUT_S (per pytest run, default 400), GIT_COMMIT, OUT,
# EXTRA_ARGS (more run.py arguments; --interpreter tries it on a CPU), ARCHIVE (a .tar.gz of OUT
# written after every run: the device tool returns only so many files, and one archive is one).
# Compare the runs with: python benchmarks/xdist_compare.py OUT
set -u -o pipefail
OUT=${OUT:-xdist-scaling}
mkdir -p "$OUT"
# NVLink multicast off in every process (issue 7; KINDS.md).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export BENCH_CASES=${CASES:-quick} BENCH_STRATEGIES=${STRATEGIES:-default,seeded}
export BENCH_ARGS="--git-commit ${GIT_COMMIT:-unknown} ${EXTRA_ARGS:-}"
nvidia-smi --query-gpu=index,name,pci.bus_id,uuid --format=csv >"$OUT/gpus.csv" 2>&1
for n in 0 ${WORKERS:-2 4}; do
  export BENCH_RESULTS="$OUT/n$n"
  mkdir -p "$BENCH_RESULTS"
  start=$(date +%s.%N)
  timeout "${RUN_TIMEOUT_S:-400}" python3 -m pytest benchmarks/xdist_suite.py -n "$n" \
    -p no:cacheprovider -s -q >"$OUT/n$n-log.txt" 2>&1
  rc=$?
  end=$(date +%s.%N)
  python3 - "$OUT/n$n/session.json" "$n" "$start" "$end" "$rc" <<'EOF'
import json, sys
path, n, start, end, rc = sys.argv[1:]
json.dump({"workers": int(n), "wall_s": float(end) - float(start), "returncode": int(rc)},
          open(path, "w"), indent=2)
EOF
  echo "-n $n: rc=$rc wall=$(python3 -c "print(round($end-$start,1))") s"
  tail -3 "$OUT/n$n-log.txt"
  if [ -n "${ARCHIVE:-}" ]; then
    tar czf "$ARCHIVE" -C "$(dirname "$OUT")" "$(basename "$OUT")"
  fi
done
