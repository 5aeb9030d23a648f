#!/usr/bin/env bash
# KNN (and MDS) scoring speed and memory of unseen-eval next to the reference libraries
# OpenOOD uses, on the same seeded pseudo-random features, in one invocation:
#
#   knn: Rust `Knn` vs faiss-cpu IndexFlatL2 (OpenOOD knn_postprocessor.py)
#   mds: Rust `Mds` vs scikit-learn EmpiricalCovariance + NumPy scoring (mds_postprocessor.py)
#
# Usage: scripts/bench_knn.sh [--n-train 50000] [--n-query 10000] [--dim 512] [--k 50]
#                             [--classes 10] [--repeat 3] [--detectors "knn mds"]
#                             [--openblas-coretype auto|none|<OpenBLAS core name>]
#
# The Rust example (crates/eval/examples/bench_knn.rs, built --release) generates the data,
# writes it as raw f32 files to a temporary directory, fits, scores once and
# writes its scores; scripts/bench_knn.py then runs the reference on those files, checks
# that both give the same scores (max abs diff) and prints the Markdown table. Each side
# runs in its own process, so each peak RSS (VmHWM / ru_maxrss) is its own; both include
# the data (features, queries). Both use every core (rayon; OpenMP / BLAS threads). The
# two sides alternate `--repeat` times, and the table shows the best run of each (wall
# clock, and CPU time of all threads, which other load on the machine disturbs less).
#
# OPENBLAS_CORETYPE: the faiss-cpu wheel bundles its own OpenBLAS (0.3.15 in faiss-cpu
# 1.15), whose DYNAMIC_ARCH detection does not know recent Xeons (virtualised ones report a
# bare "Intel(R) Xeon(R) Processor") and falls back to its generic "Prescott" SSE3 kernels,
# 4-6x slower. `auto` (the default) sets OPENBLAS_CORETYPE=SkylakeX for the reference run on
# CPUs with AVX-512 (Haswell with AVX2), so faiss gets the kernels the CPU can run; `none`
# leaves OpenBLAS's own choice (`OPENBLAS_VERBOSE=2` shows it).
#
# Needs: pip install numpy faiss-cpu scikit-learn
set -euo pipefail
cd "$(dirname "$0")/.."

n_train=50000 n_query=10000 dim=512 k=50 classes=10 repeat=3 detectors="knn mds" coretype=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --n-train) n_train=$2 ;;
    --n-query) n_query=$2 ;;
    --dim) dim=$2 ;;
    --k) k=$2 ;;
    --classes) classes=$2 ;;
    --repeat) repeat=$2 ;;
    --detectors) detectors=$2 ;;
    --openblas-coretype) coretype=$2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done

python3 -c "import faiss, numpy, sklearn" 2>/dev/null \
  || { echo "needs numpy, faiss-cpu and scikit-learn: pip install numpy faiss-cpu scikit-learn" >&2; exit 1; }

if [ "$coretype" = auto ]; then
  if grep -qw avx512f /proc/cpuinfo; then coretype=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then coretype=Haswell
  else coretype=none; fi
fi
ref_env=()
[ "$coretype" != none ] && ref_env=(OPENBLAS_CORETYPE="$coretype")

cargo build --release -q -p unseen-eval --example bench_knn
bin=target/release/examples/bench_knn
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
common=(--n-train "$n_train" --n-query "$n_query" --dim "$dim" --k "$k" --classes "$classes"
        --repeat 1 --data-dir "$dir")

# Rust and reference runs alternate (one scoring each), so that both sample the same
# machine load; the table takes the best of the `--repeat` runs of each.
for det in $detectors; do
  for r in $(seq "$repeat"); do
    echo "== $det: run $r/$repeat: rust, then reference" >&2
    "$bin" --detector "$det" "${common[@]}" > "$dir/rust_${det}_$r.json"
    env "${ref_env[@]}" python3 scripts/bench_knn.py run --detector "$det" "${common[@]}" \
      > "$dir/py_${det}_$r.json"
  done
done

echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reference run with OPENBLAS_CORETYPE=${coretype}"
echo "N = $n_train training rows, $n_query queries, D = $dim, k = $k, $classes classes; scoring: best of $repeat alternating runs (all in brackets); CPU = user + system time of all threads"
echo
python3 scripts/bench_knn.py table "$dir"/rust_*.json "$dir"/py_*.json
