// check.mjs NODE_MODULES_DIR vocab.gguf [--bytelevel] text.txt ids.tok [more text.txt ids.tok ...]
// Tokenizes each text with llama.cpp (node-llama-cpp, vocab only, no bos, no special parsing) and
// compares with tern's ids from the token file (tern-tokenizer encode --no-bos). For `llama`
// (SentencePiece-style) vocabularies also checks that llama.cpp detokenizes tern's ids back to the
// text (its byte-level detokenizer cleans up spaces before punctuation, so not with --bytelevel).
// Exit 1 on any difference.
import {readFileSync} from "node:fs";
const [nm, gguf, ...args] = process.argv.slice(2);
const bytelevel = args[0] === "--bytelevel";
const rest = bytelevel ? args.slice(1) : args;
const {getLlama, LlamaLogLevel} = await import(`${nm}/node-llama-cpp/dist/index.js`);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: gguf, gpuLayers: 0, vocabOnly: true});
let bad = 0;
for (let i = 0; i < rest.length; i += 2) {
    const text = readFileSync(rest[i], "utf8");
    const b = readFileSync(rest[i + 1]);
    const width = b.readUInt32LE(20), n = Number(b.readBigUInt64LE(24));
    const tern = [];
    for (let k = 0; k < n; k++) tern.push(width === 2 ? b.readUInt16LE(64 + 2 * k) : b.readUInt32LE(64 + 4 * k));
    const ll = Array.from(model.tokenize(text, false));
    let first = -1;
    for (let k = 0; k < Math.max(ll.length, tern.length); k++) if (ll[k] !== tern[k]) { first = k; break; }
    const spm = !bytelevel;
    const back = model.detokenize(tern, false);
    const same = first < 0, dsame = !spm || back === text;
    console.log(`${rest[i]}: ${text.length} chars, llama.cpp ${ll.length} tokens, tern ${tern.length}: ` +
                (same ? "identical ids" : `first difference at token ${first} (llama ${ll[first]} vs tern ${tern[first]})`) +
                (!spm ? "" : dsame ? ", llama.cpp detokenizes tern's ids to the text" : ", llama.cpp detokenize DIFFERS"));
    if (!same || !dsame) bad++;
}
await model.dispose();
process.exit(bad ? 1 : 0);
