import type { Hash } from 'node:crypto';
import { createHash, hash } from 'node:crypto';

export interface Sha256 {
  /** Hashes `piece` now, so it may be a view of a buffer that is reused right after. */
  update(piece: Buffer): void;
  hex(): string;
}

/**
 * SHA-256 of content whose size is known in advance. Content that arrives in one piece (almost
 * every key and config file) goes through the one-shot crypto.hash, about half the cost of
 * createHash/update/digest, which adds up over 10,000 files hashed two or three times each.
 */
export function createSha256(totalBytes: number): Sha256 {
  let oneShot: string | undefined;
  let incremental: Hash | undefined;
  return {
    update(piece) {
      if (oneShot !== undefined) throw new RangeError('more content than announced');
      if (incremental === undefined && piece.length === totalBytes) {
        oneShot = hash('sha256', piece, 'hex');
        return;
      }
      incremental ??= createHash('sha256');
      incremental.update(piece);
    },
    hex() {
      return oneShot ?? (incremental ?? createHash('sha256')).digest('hex');
    },
  };
}
