#!/usr/bin/env bash
# Regenerate the committed seed corpora tests/fuzz/corpus/<target>/ with tern's own programs
# (run from the repository root after `make`): scripts of record, so the seeds are reproducible.
#   tests/fuzz/make_seeds.sh [BUILD_DIR=build]
set -euo pipefail
B=${1:-build}
C=tests/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p $C/gguf $C/gguf_model $C/tokenizer $C/tokfile $C/config $C/checkpoint $C/encode
text=data/tinyshakespeare/input.txt
head -c 20000 $text > "$tmp/a.txt"
# tokenizers: the smallest vocabulary and a slightly larger one
$B/tern-tokenizer train -q -v 260 -o $C/tokenizer/v260.tkz "$tmp/a.txt"
$B/tern-tokenizer train -q -v 300 -o $C/tokenizer/v300.tkz "$tmp/a.txt"
# token files, 2- and 4-byte ids
head -c 600 $text > "$tmp/s.txt"
$B/tern-tokenizer encode -q -t $C/tokenizer/v300.tkz -o $C/tokfile/w2.tok "$tmp/s.txt"
$B/tern-tokenizer encode -q -t $C/tokenizer/v300.tkz -o $C/tokfile/w4.tok --width 4 "$tmp/s.txt"
$B/tern-tokenizer encode -q -t $C/tokenizer/v260.tkz -o "$tmp/t.tok" "$tmp/a.txt"
# configs: the shipped ones and the reproducers
for f in configs/*.cfg tests/fixtures/repro/*.cfg; do cp "$f" $C/config/; done
printf 'out_dir = "runs/we\\"ird #x"   # comment\nlr = auto\nmax_memory = 1.5G\nschedule = cosine\n' > $C/config/quoted.cfg
# checkpoints: a tiny run with state and tokenizer (format_version 2, checksum), and the same
# without its 512-byte header (what format_version 1 files look like: no checksum)
common="n_heads=2 n_kv_heads=1 vocab_size=260 seq_len=8 batch=1 steps=1 warmup=0 eval_interval=0 log_interval=1 \
        train_data=$tmp/t.tok tokenizer=$C/tokenizer/v260.tkz"
$B/tern-train dim=8 n_layers=1 ffn_dim=8 $common out_dir=$tmp/c >/dev/null 2>&1
cp "$tmp/c/ckpt_00000001.h5" $C/checkpoint/v2_state.h5
tail -c +513 "$tmp/c/ckpt_00000001.h5" > $C/checkpoint/v1_state.h5
# GGUF: a runnable one-layer model (rows of 256 for TQ2_0/TQ1_0) and one without tokenizer
$B/tern-train dim=256 n_layers=1 ffn_dim=256 $common out_dir=$tmp/g >/dev/null 2>&1
$B/tern-export "$tmp/g/latest.h5" -o $C/gguf/tq2.gguf >/dev/null
$B/tern-export "$tmp/g/latest.h5" -o $C/gguf/tq1_notok.gguf --type tq1_0 --no-tokenizer >/dev/null
# GGUF model path (fuzz_gguf_model): random one-layer models of the other file kinds — I2_S with a
# Q6_K embedding and the bitnet-b1.58 (ReLU²) architecture, TQ1_0 + Q4_K, TQ2_0 + Q8_0
S=dim=256,ffn=256,layers=1,heads=2,kv_heads=1,vocab=260,ctx=16
$B/tern-bench --random $S,head=q6_k,act=relu2 --save $C/gguf_model/i2s_q6k_relu2.gguf --type i2_s >/dev/null
$B/tern-bench --random $S,head=q4_k --save $C/gguf_model/tq1_q4k.gguf --type tq1_0 >/dev/null
$B/tern-bench --random $S,head=q8_0 --save $C/gguf_model/tq2_q8.gguf --type tq2_0 >/dev/null
# regression: the Q8_0 model with huge (finite) attn/ffn norm weights, so q/k/v overflow to inf in
# some elements and the KV cache and attention-weight quantizers meet NaN (found in CI, where
# converting that NaN to an integer was undefined behaviour)
python3 - $C/gguf_model/tq2_q8.gguf $C/gguf_model/regress-huge-norms.gguf <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
o = 8
nt, nkv = struct.unpack_from('<QQ', b, o); o += 16
size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t, o):
    if t == 8: return o + 8 + struct.unpack_from('<Q', b, o)[0]
    if t == 9:
        et, n = struct.unpack_from('<IQ', b, o); o += 12
        for _ in range(n): o = skip(et, o)
        return o
    return o + size[t]
align = 32
for _ in range(nkv):
    n = struct.unpack_from('<Q', b, o)[0]; key = b[o + 8:o + 8 + n].decode(); o += 8 + n
    t = struct.unpack_from('<I', b, o)[0]; o += 4
    if key == 'general.alignment': align = struct.unpack_from('<I', b, o)[0]
    o = skip(t, o)
infos = []
for _ in range(nt):
    n = struct.unpack_from('<Q', b, o)[0]; name = b[o + 8:o + 8 + n].decode(); o += 8 + n
    nd = struct.unpack_from('<I', b, o)[0]; o += 4
    ne = struct.unpack_from('<%dQ' % nd, b, o); o += 8 * nd
    t, off = struct.unpack_from('<IQ', b, o); o += 12
    infos.append((name, ne, t, off))
data = (o + align - 1) // align * align
for name, ne, t, off in infos:
    if name in ('blk.0.attn_norm.weight', 'blk.0.ffn_norm.weight'):
        assert t == 0
        struct.pack_into('<%df' % ne[0], b, data + off, *([3e37] * ne[0]))
open(sys.argv[2], 'wb').write(b)
PY
# encoder inputs: text, UTF-8, control bytes, the ▁ character, invalid UTF-8
head -c 300 $text > $C/encode/text.txt
printf 'caf\xc3\xa9 \xe2\x96\x81 na\xc3\xafve \xf0\x9f\x98\x80\n\n\t end' > $C/encode/utf8.txt
printf '\xff\xfe\x00\x01 \x80\xc3 \xe2\x96' > $C/encode/bytes.bin
ls -la $C/*
