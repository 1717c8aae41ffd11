#!/usr/bin/env bash
# mpi_scaling_model.sh — expected data-parallel scaling efficiency of tern-train on N machines
# (docs/DISTRIBUTED.md, "A model of N machines"), from one machine's measured training speed.
#   scripts/mpi_scaling_model.sh TOKS_SMALL TOKS_BASE50M [NODE_SPEEDUP ...]
# TOKS_*: tokens/s of one machine (tern-train, 1 rank, all its threads) for configs small and
# base50m; base350m's speed is base50m's scaled by training FLOPs per token. NODE_SPEEDUP (default
# 1): also tabulate nodes that many times faster (e.g. 16 for 32 cores of the same CPU).
# Weak scaling: every node runs its config's own global batch per optimizer step (small 8 x 256,
# base50m 8 x 4 x 512, base350m 4 x 16 x 1024 tokens), so compute per step stays constant and only
# communication grows with N. Per step and node (ring / Rabenseifner all-reduce; ZeRO-1's
# reduce-scatter + all-gather move the same bytes):
#   S      = 4 bytes x gradient elements (the flat fp32 buffer)
#   T_comm = 2 (N-1)/N S / (eta BW) + K 2 ceil(log2 N) alpha,   K = ceil(S / 4 MiB) buckets
#   T_comp = tokens per node per step / node tokens/s
#   W      = (2/3) T_comp / A   (backward of the last of A local micro-batches: what overlap can hide)
#   T_exp  = max(T_comm - W, T_comm / K)       (the last bucket, the embedding, never hides)
#   E      = T_comp / (T_comp + T_exp)
# with eta = 0.8 of line rate achieved; alpha = 30 us per message at 10 and 25 Gb/s (TCP), 5 us at
# 100 Gb/s (RDMA).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
ts=$1
tb=$2
shift 2
speedups=${*:-1}
for sp in $speedups; do
  awk -v ts="$ts" -v tb="$tb" -v sp="$sp" 'BEGIN {
    # name, gradient elements (flat buffer, tensors padded to 16), tokens per node per step, local micro-batches,
    # training FLOPs per token (6 P + 6 layers T dim)
    n = 0
    name[++n] = "small";    elems[n] = 6169856;   tok[n] = 2048;  acc[n] = 1;  fpt[n] = 6 * 6169856 + 6 * 6 * 256 * 256
    name[++n] = "base50m";  elems[n] = 56658688;  tok[n] = 16384; acc[n] = 4;  fpt[n] = 6 * 56658688 + 6 * 8 * 512 * 768
    name[++n] = "base350m"; elems[n] = 350902784; tok[n] = 65536; acc[n] = 16; fpt[n] = 6 * 350902784 + 6 * 26 * 1024 * 1024
    speed[1] = ts * sp; speed[2] = tb * sp; speed[3] = tb * sp * fpt[2] / fpt[3]
    split("10 25 100", gbit, " "); split("30e-6 30e-6 5e-6", alpha, " "); split("8 32 128", nodes, " ")
    printf "node speed: %s x the measured machine; scaling efficiency E at N nodes (T_comm at N = 128 in brackets)\n", sp
    printf "%-9s %7s %9s %9s %4s |", "config", "S MB", "tok/s", "T_comp s", "K"
    for (g = 1; g <= 3; g++) printf " %3d Gb/s: N=8   N=32  N=128 (T_comm)  |", gbit[g]
    printf "\n"
    for (m = 1; m <= n; m++) {
      S = 4 * elems[m]; K = int((S + 4194303) / 4194304); Tc = tok[m] / speed[m]; W = (2 / 3) * Tc / acc[m]
      printf "%-9s %7.1f %9.0f %9.3f %4d |", name[m], S / 1e6, speed[m], Tc, K
      for (g = 1; g <= 3; g++) {
        printf "          "
        for (k = 1; k <= 3; k++) {
          N = nodes[k]; lg = int(log(N) / log(2) + 0.999999)
          Tm = 2 * (N - 1) / N * S / (0.8 * gbit[g] * 1e9 / 8) + K * 2 * lg * alpha[g]
          Te = Tm - W; if (Te < Tm / K) Te = Tm / K
          printf "%5.1f%% ", 100 * Tc / (Tc + Te)
        }
        printf "(%6.3fs) |", Tm
      }
      printf "\n"
    }
  }'
done
