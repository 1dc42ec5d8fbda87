/**
 * The process `npm run bench -- --instructions` runs under callgrind, once per count (see bench/instructions.ts):
 * `node --single-threaded --predictable bench/.out/instructions-child.mjs <contender> <op index> <calls>`.
 * @module
 */
import { overheadContenders } from './contenders.js';
import { runInstructionsChild } from './instruction-ops.js';
import { loadPeers } from './peers.js';

await runInstructionsChild(overheadContenders(await loadPeers()), process.argv.slice(2));
