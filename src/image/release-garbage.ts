import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options?: { type: 'minor' | 'major' }) => void;

let collect: Collect | undefined | null = null;

/**
 * Decoders hand out a fresh Buffer per chunk; V8 frees their memory only when it feels the
 * external-memory pressure (tens of MiB later), so streaming 2 GiB left ~100 MiB of dead chunks
 * resident. A young-generation collection every few MiB keeps RSS flat and measured no slower
 * (docs/adr/0203-bounded-memory.md). If the runtime refuses, this quietly does nothing.
 */
function collector(): Collect | undefined {
  if (collect !== null) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const found: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    collect = typeof found === 'function' ? (found as Collect) : undefined;
  } catch {
    collect = undefined;
  }
  return collect;
}

/** Returns a function to call with each chunk's size; it runs a minor GC every `everyBytes`. */
export function garbageReleaser(everyBytes = 16 * 1024 * 1024): (chunkBytes: number) => void {
  const run = collector();
  let sinceBytes = 0;
  return (chunkBytes) => {
    if (run === undefined) return;
    sinceBytes += chunkBytes;
    if (sinceBytes < everyBytes) return;
    sinceBytes = 0;
    run({ type: 'minor' });
  };
}
