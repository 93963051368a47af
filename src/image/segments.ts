/** Zero detection works on granules of this size: small enough to find zero runs, big enough to be cheap. */
export const ZERO_GRANULE_BYTES = 64 * 1024;

const ZERO_GRANULE = Buffer.alloc(ZERO_GRANULE_BYTES);

/** A run of image bytes that is either all zeros or holds data. */
export interface Segment {
  readonly startBytes: number;
  readonly endBytes: number;
  readonly zero: boolean;
}

/**
 * Splits a block of image bytes (starting at image offset `startBytes`) into alternating data and
 * zero runs, on granule boundaries; a trailing partial granule counts as data unless it is all
 * zeros. Pure and allocation-light: memcmp against a shared zero granule. Granules marked 1 in
 * `knownZero` are zero without looking (the caller found them zero and did not copy them in).
 */
export function planBlockSegments(block: Buffer, startBytes: number, knownZero?: Uint8Array): Segment[] {
  const segments: Segment[] = [];
  let runStart = 0;
  let runZero: boolean | undefined;
  for (let at = 0; at < block.length; at += ZERO_GRANULE_BYTES) {
    const end = Math.min(block.length, at + ZERO_GRANULE_BYTES);
    const zero =
      knownZero?.[at / ZERO_GRANULE_BYTES] === 1 ||
      block
        .subarray(at, end)
        .equals(end - at === ZERO_GRANULE_BYTES ? ZERO_GRANULE : ZERO_GRANULE.subarray(0, end - at));
    if (runZero === undefined) runZero = zero;
    else if (zero !== runZero) {
      segments.push({ startBytes: startBytes + runStart, endBytes: startBytes + at, zero: runZero });
      runStart = at;
      runZero = zero;
    }
  }
  if (runZero !== undefined)
    segments.push({ startBytes: startBytes + runStart, endBytes: startBytes + block.length, zero: runZero });
  return segments;
}

/** True when `bytes` (at most one granule) is all zeros. */
export function isZeroGranule(bytes: Buffer): boolean {
  return bytes.equals(bytes.length === ZERO_GRANULE_BYTES ? ZERO_GRANULE : ZERO_GRANULE.subarray(0, bytes.length));
}
