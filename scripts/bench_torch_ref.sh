#!/usr/bin/env bash
# bench_torch_ref.sh — training-step throughput of the `small` config in eager PyTorch (the reference
# that tern's own training bench is compared with). Prints machine-parsable lines:
#   torch_ref bench: ternary tokens/s = X      torch_ref bench: fp tokens/s = Y
#   torch_ref bench: <variant> peak RSS = Z MiB
# Threads: $OMP_NUM_THREADS (default 2). Skips (exit 0) when PyTorch is not installed
# (scripts/install-deps.sh ref installs python3-torch, python3-h5py, python3-numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if ! "$py" -c "import torch, h5py" 2>/dev/null; then
  echo "torch_ref bench: skipped (no PyTorch/h5py for $py; scripts/install-deps.sh ref)"
  exit 0
fi
exec "$py" scripts/torch_ref.py bench --threads "${OMP_NUM_THREADS:-2}" "$@"
