#!/bin/sh
# plot_loss.sh — training curves from a tern CSV log (src/training/trainlog.h) to a PNG, with gnuplot.
#   usage: scripts/plot_loss.sh runs/x/train.csv [out.png] [title]
#   default out: loss.png next to the CSV. Top panel: train loss (and val loss where present) vs
#   step; bottom panel: learning rate and gradient norm vs step.
set -eu
csv=${1:-}
if [ -z "$csv" ] || [ "$csv" = "-h" ] || [ "$csv" = "--help" ]; then
    echo "usage: $0 TRAIN.csv [OUT.png] [TITLE]" >&2
    exit 2
fi
out=${2:-$(dirname "$csv")/loss.png}
title=${3:-$csv}
command -v gnuplot >/dev/null 2>&1 || { echo "plot_loss.sh: gnuplot is not installed (scripts/install-deps.sh demo)" >&2; exit 1; }
[ -r "$csv" ] || { echo "plot_loss.sh: $csv: cannot read" >&2; exit 1; }
header=$(head -n 1 "$csv")
[ "$header" = "step,tokens,loss,lr,grad_norm,tokens_per_s,val_loss" ] ||
    { echo "plot_loss.sh: $csv: not a tern training log (header '$header')" >&2; exit 1; }
rows=$(($(wc -l < "$csv") - 1))
[ "$rows" -ge 1 ] || { echo "plot_loss.sh: $csv: no rows yet" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# data rows as whitespace-separated columns; validation rows separately (val_loss non-empty)
awk -F, 'NR > 1 && NF >= 6 { print $1, $3, $4, $5 }' "$csv" > "$tmp/train.dat"
awk -F, 'NR > 1 && NF >= 7 && $7 != "" && $7 != "nan" { print $1, $7 }' "$csv" > "$tmp/val.dat"
val_plot=""
if [ -s "$tmp/val.dat" ]; then
    val_plot=", '$tmp/val.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#d62728' title 'val loss'"
fi
esc_title=$(printf '%s' "$title" | sed "s/'/''/g")

gnuplot <<GP
set terminal pngcairo noenhanced size 1000,800 font 'sans,10'
set output '$tmp/out.png'
set multiplot layout 2,1 title '$esc_title'
set grid
set key top right
set xlabel 'step'
set ylabel 'loss'
plot '$tmp/train.dat' using 1:2 with lines lw 1.5 lc rgb '#1f77b4' title 'train loss' $val_plot
set ylabel 'learning rate'
set y2label 'grad norm'
set ytics nomirror
set y2tics
set format y '%.1e'
plot '$tmp/train.dat' using 1:3 with lines lw 1.5 lc rgb '#2ca02c' title 'lr' axes x1y1, \
     '$tmp/train.dat' using 1:4 with lines lw 1 lc rgb '#ff7f0e' title 'grad norm' axes x1y2
unset multiplot
GP
mv "$tmp/out.png" "$out"
echo "$out ($rows rows)"
