import type { MemberHeader } from './tar-writer.ts';

/**
 * Packs consecutive bundle members into one buffer, so that 10,000 small keys and configs become
 * a dozen 1 MiB writes, with their headers encoded and their contents read straight into it: no
 * buffer per header, per file or per padding, and no concatenation (docs/adr/0105).
 */
export interface MemberBatch {
  /** Bytes free in the current buffer. */
  readonly roomBytes: number;
  /** Bytes filled in the current buffer. */
  readonly usedBytes: number;
  /** Appends a header; the caller checked `roomBytes` first. */
  addHeader(header: MemberHeader): void;
  /**
   * Lets `fill` write up to `maxBytes` at the current end and return how many it kept (the rest
   * must be untouched, as zero padding up to `paddedBytes`). Returns a view of the kept bytes.
   */
  addContent(maxBytes: number, paddedBytes: number, fill: (target: Buffer, offset: number) => number): Buffer;
  /** The filled part, to be written; the batch goes on in a fresh buffer, as the writer may still hold this one. */
  take(): Buffer;
}

/**
 * Buffers come zeroed (one memset per megabyte) and are only ever appended to, so header blocks
 * and padding need no filling of their own: 30,000 small fills cost more than the memset.
 */
export function createMemberBatch(capacityBytes: number): MemberBatch {
  let buffer = Buffer.alloc(capacityBytes);
  let used = 0;
  return {
    get roomBytes() {
      return capacityBytes - used;
    },
    get usedBytes() {
      return used;
    },
    addHeader(header) {
      header.writeTo(buffer, used);
      used += header.sizeBytes;
    },
    addContent(maxBytes, paddedBytes, fill) {
      if (Math.max(maxBytes, paddedBytes) > capacityBytes - used) throw new RangeError('member batch overflow');
      const keptBytes = fill(buffer, used);
      const kept = buffer.subarray(used, used + keptBytes);
      used += paddedBytes;
      return kept;
    },
    take() {
      const filled = buffer.subarray(0, used);
      buffer = Buffer.alloc(capacityBytes);
      used = 0;
      return filled;
    },
  };
}
