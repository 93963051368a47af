import type { Plan } from '../plan/index.ts';
import { requestsFromPlanPaths, selectPaths } from '../retain/index.ts';

/** tar's unit: every header and every file's data is padded to it. */
const TAR_BLOCK_BYTES = 512;
/** Per entry: the ustar header, a pax extended header with its own header (times, long names, xattrs). */
const PER_ENTRY_BYTES = 3 * TAR_BLOCK_BYTES;
/** The manifest's line for an entry (path, owner, mode, times, digest) — generous. */
const MANIFEST_BYTES_PER_ENTRY = 512;
/**
 * The retained state may grow between arm and the recovery boot (a log rotated, a key added): the
 * room is the measured size with half again on top, plus a fixed allowance.
 */
const GROWTH_FACTOR = 1.5;
const FIXED_ALLOWANCE_BYTES = 4 * 1024 * 1024;

/**
 * How much room the retention bundle gets in the refuge, measured read-only on the old root: the
 * same selection the capture makes (a required path that is missing fails here, as it would in
 * the capture), each entry's tar and manifest cost, and room to grow.
 */
export async function measureBundleRoom(
  root: string,
  plan: Plan,
  signal?: AbortSignal,
): Promise<{ entries: number; measuredBytes: number; roomBytes: number; missingOptional: readonly string[] }> {
  const { selected, missingOptional } = await selectPaths(root, requestsFromPlanPaths(plan.retain.paths), signal);
  let measuredBytes = 2 * TAR_BLOCK_BYTES; // tar's end-of-archive blocks
  for (const entry of selected) {
    const dataBytes = entry.stats.isFile() ? Number(entry.stats.size) : 0;
    measuredBytes +=
      PER_ENTRY_BYTES + MANIFEST_BYTES_PER_ENTRY + Math.ceil(dataBytes / TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES;
  }
  const roomBytes = Math.ceil((measuredBytes * GROWTH_FACTOR + FIXED_ALLOWANCE_BYTES) / 4096) * 4096;
  return { entries: selected.length, measuredBytes, roomBytes, missingOptional };
}
