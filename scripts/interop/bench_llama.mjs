// bench_llama.mjs — llama.cpp's own speed (node-llama-cpp's prebuilt CPU binaries) on a GGUF, for
// the cross-runtime comparisons of scripts/bench_2b4t.sh:
//   node scripts/interop/bench_llama.mjs model.gguf [prefill_tokens=64] [decode_tokens=32] [threads=2]
// Prints one line: "llama.cpp load S s, prefill P tok/s, decode D tok/s". Load = loadModel +
// createContext (llama.cpp mmaps the weights); prefill = one batch of random tokens; decode =
// greedy generation token by token, sampled natively (no logits copied into JavaScript).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, P = "64", N = "32", T = "2"] = process.argv.slice(2);
if (!modelPath) {
    console.error("usage: node bench_llama.mjs model.gguf [prefill_tokens] [decode_tokens] [threads]");
    process.exit(2);
}
const nP = Number(P), nN = Number(N), threads = Number(T);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const t0 = performance.now();
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const ctx = await model.createContext({contextSize: 256, batchSize: Math.max(64, nP), threads});
const tLoad = (performance.now() - t0) / 1000;
const seq = ctx.getSequence();
const nVocab = 32000;   // token ids drawn below every tern test vocabulary size
let x = 12345;
const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return 300 + (x % (nVocab - 300)); };
const prompt = Array.from({length: nP}, rnd);
const a = performance.now();
await seq.evaluateWithoutGeneratingNewTokens(prompt);
const b = performance.now();
let n = 0;
const c = performance.now();
for await (const tok of seq.evaluate([rnd()], {temperature: 0})) {
    void tok;
    if (++n >= nN) break;
}
const d = performance.now();
console.log(`llama.cpp load ${tLoad.toFixed(2)} s, prefill ${(nP / ((b - a) / 1000)).toFixed(2)} tok/s, decode ${(nN / ((d - c) / 1000)).toFixed(2)} tok/s`);
await ctx.dispose();
await model.dispose();
