// Runs writeMappedRanges in a process of its own, for the SIGKILL test: prints "durable N" on
// stdout once onDurable is given N (standing in for the journal write), "done" at the end.
// Arguments: IMAGE TARGET MAP_JSON DURABLE_BYTES CHECKPOINT_BYTES
import { readFileSync, writeSync } from 'node:fs';
import type { ByteRange } from '../../../src/disk/index.ts';
import { writeMappedRanges } from '../../../src/image/index.ts';

const [imagePath, target, mapPath, durable, checkpoint] = process.argv.slice(2);
if (imagePath === undefined || target === undefined || mapPath === undefined) throw new Error('usage');
const ranges = JSON.parse(readFileSync(mapPath, 'utf8')) as ByteRange[];
await writeMappedRanges({
  imagePath,
  target,
  ranges,
  durableBytes: Number(durable ?? 0),
  checkpointBytes: Number(checkpoint ?? 64 * 1024 * 1024),
  onDurable: async (durableBytes) => {
    // Synchronous, so the line is out before the write goes on.
    writeSync(1, `durable ${durableBytes}\n`);
  },
});
writeSync(1, 'done\n');
