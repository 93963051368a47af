import { ReimageError } from '../core/reimage-error.ts';
import type { ByteRange } from '../disk/index.ts';
import { JOURNAL_SIZE_BYTES } from './journal-file.ts';
import type { RefugeExtent } from './refuge-extent.ts';

/**
 * Everything in the refuge starts and ends on a 4096-byte boundary of the disk: a 4Kn disk and
 * O_DIRECT take it, and no logical block is shared with the old filesystem's data.
 */
export const REFUGE_BLOCK_BYTES = 4096;

/**
 * The framed header's room, directly after the journal. The layout owns it (not refuge-header.ts,
 * which imports the item names from here) so the two modules do not import each other.
 */
export const REFUGE_HEADER_BYTES = 65536;

/** The journal and the header, one run of the disk: what `reimage.refuge=` names. */
export const REFUGE_HEAD_BYTES = JOURNAL_SIZE_BYTES + REFUGE_HEADER_BYTES;

export const REFUGE_ITEM_NAMES = ['core', 'kernel', 'initramfs', 'image', 'plan', 'map', 'old-lba0', 'bundle'] as const;
export type RefugeItemName = (typeof REFUGE_ITEM_NAMES)[number];

export interface RefugeItemRequest {
  readonly name: RefugeItemName;
  readonly sizeBytes: number;
  /** core and kernel: GRUB reads each in one piece (see kernelBlocklist); the others may be split. */
  readonly contiguous: boolean;
}

export interface PlacedItem {
  readonly name: RefugeItemName;
  readonly sizeBytes: number;
  /** In file order; together exactly `sizeBytes` rounded up to 4096. */
  readonly extents: readonly RefugeExtent[];
}

export interface RefugeLayout {
  /** JOURNAL_SIZE_BYTES, at the start of the extent that also holds the header. */
  readonly journal: RefugeExtent;
  /** REFUGE_HEADER_BYTES, directly after the journal. */
  readonly header: RefugeExtent;
  /** In the order they were asked for. */
  readonly items: readonly PlacedItem[];
  /** Journal, header and every item rounded up to 4096. */
  readonly usedBytes: number;
  /** Usable bytes left over. */
  readonly spareBytes: number;
}

export function roundUpToBlock(bytes: number): number {
  return Math.ceil(bytes / REFUGE_BLOCK_BYTES) * REFUGE_BLOCK_BYTES;
}

/** The disk ranges of placed extents, in file order: what the header and the raw I/O use. */
export function placedRanges(extents: readonly RefugeExtent[]): ByteRange[] {
  return extents.map((extent) => ({ offsetBytes: extent.diskOffsetBytes, lengthBytes: extent.lengthBytes }));
}

function layoutInvalid(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_LAYOUT_INVALID',
    `The refuge cannot be laid out: ${what}. This is a bug in the caller that measured the refuge or sized its items.`,
    { evidence },
  );
}

function checkUsable(usable: readonly RefugeExtent[]): void {
  for (const [index, extent] of usable.entries()) {
    const { fileOffsetBytes, diskOffsetBytes, lengthBytes } = extent;
    const whole = [fileOffsetBytes, diskOffsetBytes, lengthBytes].every((n) => Number.isSafeInteger(n) && n >= 0);
    if (!whole || diskOffsetBytes % REFUGE_BLOCK_BYTES !== 0 || lengthBytes % REFUGE_BLOCK_BYTES !== 0) {
      throw layoutInvalid(`usable extent ${index} is not whole 4096-byte blocks of the disk`, {
        field: `usable[${index}]`,
        fileOffsetBytes,
        diskOffsetBytes,
        lengthBytes,
      });
    }
  }
  for (const [key, label] of [
    ['diskOffsetBytes', 'disk'],
    ['fileOffsetBytes', 'file'],
  ] as const) {
    const sorted = [...usable].sort((a, b) => a[key] - b[key]);
    for (let i = 1; i < sorted.length; i++) {
      const before = sorted[i - 1];
      const after = sorted[i];
      if (before !== undefined && after !== undefined && before[key] + before.lengthBytes > after[key]) {
        throw layoutInvalid(`two usable extents overlap on the ${label}`, {
          field: key,
          firstOffsetBytes: before[key],
          firstLengthBytes: before.lengthBytes,
          secondOffsetBytes: after[key],
        });
      }
    }
  }
}

function checkItems(items: readonly RefugeItemRequest[]): void {
  const seen = new Set<RefugeItemName>();
  for (const item of items) {
    if (seen.has(item.name)) throw layoutInvalid(`the item "${item.name}" is asked for twice`, { field: item.name });
    seen.add(item.name);
    if (!Number.isSafeInteger(item.sizeBytes) || item.sizeBytes < 1) {
      throw layoutInvalid(`the item "${item.name}" has no usable size`, {
        field: item.name,
        sizeBytes: item.sizeBytes,
      });
    }
  }
}

/** Extents adjacent both in the file and on the disk are one piece: a contiguous item may span them. */
function joinAdjacent(usable: readonly RefugeExtent[]): RefugeExtent[] {
  const pieces: RefugeExtent[] = [];
  for (const extent of [...usable].sort((a, b) => a.fileOffsetBytes - b.fileOffsetBytes)) {
    if (extent.lengthBytes === 0) continue;
    const last = pieces.at(-1);
    if (
      last !== undefined &&
      last.fileOffsetBytes + last.lengthBytes === extent.fileOffsetBytes &&
      last.diskOffsetBytes + last.lengthBytes === extent.diskOffsetBytes
    ) {
      pieces[pieces.length - 1] = { ...last, lengthBytes: last.lengthBytes + extent.lengthBytes };
    } else {
      pieces.push({ ...extent });
    }
  }
  return pieces;
}

/** The free pieces, in file order; allocations take bytes from a piece's start. */
class FreePieces {
  readonly #pieces: RefugeExtent[];
  constructor(pieces: RefugeExtent[]) {
    this.#pieces = pieces;
  }

  get largestBytes(): number {
    return this.#pieces.reduce((largest, piece) => Math.max(largest, piece.lengthBytes), 0);
  }

  /** The smallest piece that holds `bytes` (the first of equals); undefined if none does. */
  bestFit(bytes: number): number | undefined {
    let best: number | undefined;
    for (const [index, piece] of this.#pieces.entries()) {
      const bestPiece = best === undefined ? undefined : this.#pieces[best];
      if (piece.lengthBytes >= bytes && (bestPiece === undefined || piece.lengthBytes < bestPiece.lengthBytes)) {
        best = index;
      }
    }
    return best;
  }

  /** `bytes` from the start of piece `index`; the piece shrinks (and goes when empty). */
  take(index: number, bytes: number): RefugeExtent {
    const piece = this.#pieces[index];
    if (piece === undefined || piece.lengthBytes < bytes) throw new Error(`piece ${index} cannot give ${bytes} bytes`);
    const taken = {
      fileOffsetBytes: piece.fileOffsetBytes,
      diskOffsetBytes: piece.diskOffsetBytes,
      lengthBytes: bytes,
    };
    if (piece.lengthBytes === bytes) this.#pieces.splice(index, 1);
    else {
      this.#pieces[index] = {
        fileOffsetBytes: piece.fileOffsetBytes + bytes,
        diskOffsetBytes: piece.diskOffsetBytes + bytes,
        lengthBytes: piece.lengthBytes - bytes,
      };
    }
    return taken;
  }

  /** `bytes` from the pieces in file order, each piece used up before the next. */
  takeInOrder(bytes: number): RefugeExtent[] {
    const taken: RefugeExtent[] = [];
    let left = bytes;
    while (left > 0) {
      const first = this.#pieces[0];
      if (first === undefined) throw new Error(`${left} bytes short: the total was checked first`);
      const extent = this.take(0, Math.min(left, first.lengthBytes));
      taken.push(extent);
      left -= extent.lengthBytes;
    }
    return taken;
  }
}

/**
 * Places the journal, the header and the items in the usable extents (whole 4096-byte blocks of
 * the disk, from usableExtents). Pure.
 *
 * The journal and header go in one piece (the recovery boot names them with one sector range),
 * like the contiguous items (core and kernel). These pieces are placed first, largest first, each
 * in the smallest free piece that holds it, so a small one does not take the only piece a large
 * one fits in. (The contract said "journal+header in the first extent that holds 72 KiB"; placing
 * them by best fit with the other contiguous pieces packs better and nothing depends on where
 * they lie.) The other items follow in the order asked: in one piece when one holds it (best fit;
 * an initramfs fragment is one GRUB blocklist file each), else split over the free pieces in file
 * order. Each item takes its size rounded up to 4096.
 *
 * Refuses with REIMAGE_REFUGE_TOO_SMALL when the room is smaller than what is needed, or when no
 * free piece holds a contiguous item; the evidence gives needed, available, the largest piece and
 * the largest contiguous item.
 */
export function placeRefuge(usable: readonly RefugeExtent[], items: readonly RefugeItemRequest[]): RefugeLayout {
  checkUsable(usable);
  checkItems(items);
  const pieces = joinAdjacent(usable);
  const free = new FreePieces(pieces);
  const availableBytes = pieces.reduce((sum, piece) => sum + piece.lengthBytes, 0);
  const neededBytes = items.reduce((sum, item) => sum + roundUpToBlock(item.sizeBytes), REFUGE_HEAD_BYTES);
  const largestPieceBytes = free.largestBytes;
  const contiguous = [
    { name: 'journal and header', bytes: REFUGE_HEAD_BYTES },
    ...items
      .filter((item) => item.contiguous)
      .map((item) => ({ name: item.name, bytes: roundUpToBlock(item.sizeBytes) })),
  ];
  const largestContiguous = contiguous.reduce((largest, item) => (item.bytes > largest.bytes ? item : largest));
  const tooSmall = (why: string): ReimageError =>
    new ReimageError(
      'REIMAGE_REFUGE_TOO_SMALL',
      `The refuge is too small: ${why}. It needs ${neededBytes} bytes with a piece of ${largestContiguous.bytes} bytes in one run (the ${largestContiguous.name}); it has ${availableBytes} usable bytes, the largest piece ${largestPieceBytes} bytes. Free space on the old filesystem (or defragment it) and arm again.`,
      {
        evidence: {
          neededBytes,
          availableBytes,
          largestPieceBytes,
          largestContiguousItem: largestContiguous.name,
          largestContiguousBytes: largestContiguous.bytes,
        },
      },
    );
  if (neededBytes > availableBytes) throw tooSmall(`${neededBytes - availableBytes} bytes are missing`);

  const placed = new Map<string, RefugeExtent[]>();
  for (const item of [...contiguous].sort((a, b) => b.bytes - a.bytes)) {
    const index = free.bestFit(item.bytes);
    if (index === undefined) {
      throw tooSmall(
        `no free piece holds the ${item.name} (${item.bytes} bytes) in one run; the largest piece left is ${free.largestBytes} bytes`,
      );
    }
    placed.set(item.name, [free.take(index, item.bytes)]);
  }
  for (const item of items.filter((candidate) => !candidate.contiguous)) {
    const bytes = roundUpToBlock(item.sizeBytes);
    const index = free.bestFit(bytes);
    placed.set(item.name, index === undefined ? free.takeInOrder(bytes) : [free.take(index, bytes)]);
  }

  const head = placed.get('journal and header')?.[0];
  if (head === undefined) throw new Error('the journal and header were placed first');
  return {
    journal: {
      fileOffsetBytes: head.fileOffsetBytes,
      diskOffsetBytes: head.diskOffsetBytes,
      lengthBytes: JOURNAL_SIZE_BYTES,
    },
    header: {
      fileOffsetBytes: head.fileOffsetBytes + JOURNAL_SIZE_BYTES,
      diskOffsetBytes: head.diskOffsetBytes + JOURNAL_SIZE_BYTES,
      lengthBytes: REFUGE_HEADER_BYTES,
    },
    items: items.map((item) => ({ name: item.name, sizeBytes: item.sizeBytes, extents: placed.get(item.name) ?? [] })),
    usedBytes: neededBytes,
    spareBytes: availableBytes - neededBytes,
  };
}
