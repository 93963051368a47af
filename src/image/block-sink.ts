import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { type TargetInfo, writeAt, zeroRange } from '../disk/index.ts';
import type { BlockMap, MappedRange } from './block-map.ts';
import { BlockPool } from './block-pool.ts';
import { isZeroGranule, planBlockSegments, ZERO_GRANULE_BYTES } from './segments.ts';
import { WritesInFlight } from './writes-in-flight.ts';

/** Decoded bytes are gathered into write blocks of this size before they are written. */
export const WRITE_BLOCK_BYTES = 4 * 1024 * 1024;
/** Write blocks in flight at once: enough to keep the disk busy while the decoder fills the next one. */
export const WRITE_BLOCKS_IN_FLIGHT = 4;
/** Memory a BlockSink needs: the write blocks in flight plus one block of zeros. */
export const SINK_SLAB_BYTES = (WRITE_BLOCKS_IN_FLIGHT + 1) * WRITE_BLOCK_BYTES;
/** The kernel is asked to zero whole units of this size only. */
const KERNEL_ZERO_UNIT_BYTES = 4096;
/** Zero runs at least this long go to the kernel (fallocate); shorter ones are written. */
export const MIN_KERNEL_ZERO_RUN_BYTES = 1024 * 1024;
/** Kernel zeroing requests (one tool process each) running at once. */
export const KERNEL_ZERO_OPS_IN_FLIGHT = 2;
/** With buffered writes, flush after this many bytes so the dirty page cache stays small. */
export const BUFFERED_FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

export interface SinkCounters {
  bytesWritten: number;
  bytesZeroed: number;
  bytesSkipped: number;
  imageBytes: number;
}

export interface BlockSinkOptions {
  readonly target: TargetInfo;
  /** The fd to write through; opened with O_DIRECT when `direct` is true. */
  readonly handle: FileHandle;
  /** A buffered fd for writes O_DIRECT cannot take (an unaligned tail). Same as handle when not direct. */
  readonly bufferedHandle: FileHandle;
  readonly direct: boolean;
  /** SINK_SLAB_BYTES of memory (the last block stays zero), aligned for O_DIRECT. */
  readonly slab: Buffer;
  /**
   * The most image bytes the write may take (its known size, or a bound not above the target's
   * size): more is `tooLong`'s error before a byte past it is written.
   */
  readonly maxImageBytes: number;
  readonly tooLong: (decodedBytes: number) => ReimageError;
  readonly blockMap: BlockMap | undefined;
  /** Hash of the whole decoded image, for the read-back check without a map. */
  readonly imageHash: Hash | undefined;
  readonly onTouch: () => void;
  readonly signal?: AbortSignal;
  /**
   * The target's first logical block as it is now (LBA 0, target.logicalBlockSizeBytes long, or
   * the whole target if smaller). Image bytes that fall in it are copied here instead of being
   * written: LBA 0 is written last, in one write, by commitFirstSector (docs/adr/0205).
   */
  readonly firstSector: Buffer;
}

/**
 * Takes decoded image bytes in order and puts them on the target: only mapped ranges with a block
 * map (each range's digest checked), otherwise everything, with zero runs handed to the kernel.
 * Writes run concurrently (several blocks in flight); the decoder waits when all are busy.
 */
export class BlockSink {
  readonly counters: SinkCounters = { bytesWritten: 0, bytesZeroed: 0, bytesSkipped: 0, imageBytes: 0 };
  /** Digests of each mapped range as written, by index; used by the read-back. */
  readonly rangeDigests: string[] = [];

  readonly #o: BlockSinkOptions;
  readonly #blocks: BlockPool;
  readonly #zeros: Buffer;
  #current: Buffer;
  #fill = 0;
  #blockOffsetBytes = 0;
  #rangeIndex = 0;
  #copyRangeIndex = 0;
  #rangeHash: Hash | undefined;
  #pendingZeroStart = -1;
  #pendingZeroEnd = -1;
  #kernelZeroing = true;
  #bufferedSinceFlush = 0;
  readonly #writes: WritesInFlight;
  #firstSectorHeld = false;
  readonly #kernelZeroOps = new Set<Promise<void>>();
  /** Granules of the current block found zero in push and never copied in (their bytes are stale). */
  readonly #knownZero = new Uint8Array(WRITE_BLOCK_BYTES / ZERO_GRANULE_BYTES);

  constructor(o: BlockSinkOptions) {
    this.#o = o;
    this.#writes = new WritesInFlight(o.onTouch);
    this.#blocks = new BlockPool(o.slab, WRITE_BLOCKS_IN_FLIGHT, WRITE_BLOCK_BYTES);
    this.#zeros = o.slab
      .subarray(WRITE_BLOCKS_IN_FLIGHT * WRITE_BLOCK_BYTES, (WRITE_BLOCKS_IN_FLIGHT + 1) * WRITE_BLOCK_BYTES)
      .fill(0);
    this.#current = this.#blocks.takeNow();
  }

  /**
   * The target's new first logical block (image bytes over the old ones), or undefined when no
   * image byte was meant for it (a block map that does not map LBA 0): then nothing is written there.
   */
  get firstSector(): Buffer | undefined {
    return this.#firstSectorHeld ? this.#o.firstSector : undefined;
  }

  /** Copies a decoded chunk in; resolves when the sink can take more. */
  async push(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(chunk.length - offset, WRITE_BLOCK_BYTES - this.#fill);
      if (this.#o.blockMap !== undefined) this.#copyMapped(chunk, offset, take);
      else if (this.#o.imageHash !== undefined) chunk.copy(this.#current, this.#fill, offset, offset + take);
      else this.#copySkippingZeros(chunk, offset, take);
      this.#fill += take;
      offset += take;
      if (this.#fill === WRITE_BLOCK_BYTES) await this.#dispatch();
    }
  }

  /**
   * Without a map most of an OS image is zero runs, which are never written from the block (the
   * kernel zeroes them, or they are written from the shared zero buffer): whole granules of zeros
   * are only marked, not copied. Partial granules are copied and judged at dispatch.
   */
  #copySkippingZeros(chunk: Buffer, offset: number, length: number): void {
    let at = this.#fill;
    let from = offset;
    const end = offset + length;
    while (from < end) {
      const granuleEnd = (Math.floor(at / ZERO_GRANULE_BYTES) + 1) * ZERO_GRANULE_BYTES;
      const take = Math.min(end - from, granuleEnd - at);
      const piece = chunk.subarray(from, from + take);
      if (take === ZERO_GRANULE_BYTES && isZeroGranule(piece)) this.#knownZero[at / ZERO_GRANULE_BYTES] = 1;
      else piece.copy(this.#current, at);
      at += take;
      from += take;
    }
  }

  /**
   * With a map only mapped bytes are ever hashed or written, so only they are copied: most of an
   * OS image is unmapped, and copying it was most of the CPU time.
   */
  #copyMapped(chunk: Buffer, offset: number, length: number): void {
    const ranges = this.#o.blockMap?.ranges ?? [];
    const blockPosition = this.#fill;
    const startBytes = this.#blockOffsetBytes + blockPosition;
    const endBytes = startBytes + length;
    let index = this.#copyRangeIndex;
    for (;;) {
      const range = ranges[index];
      if (range === undefined || range.offsetBytes >= endBytes) break;
      const rangeEnd = range.offsetBytes + range.lengthBytes;
      if (rangeEnd <= startBytes) {
        index++;
        continue;
      }
      const from = Math.max(startBytes, range.offsetBytes);
      const to = Math.min(endBytes, rangeEnd);
      chunk.copy(
        this.#current,
        blockPosition + (from - startBytes),
        offset + (from - startBytes),
        offset + (to - startBytes),
      );
      if (rangeEnd > endBytes) break;
      index++;
    }
    this.#copyRangeIndex = index;
  }

  /** After a failure elsewhere: writes nothing more, only lets the writes in flight settle. */
  async settle(): Promise<void> {
    await this.#writes.settle();
  }

  /** Writes what is left, waits for every write, and returns the image's decoded size. */
  async end(): Promise<number> {
    if (this.#fill > 0) await this.#dispatch();
    await this.#flushZeroRun();
    await this.#writes.drain();
    const map = this.#o.blockMap;
    if (map !== undefined && this.#rangeIndex < map.ranges.length) {
      // The image ended inside or before a mapped range: the map and the image disagree.
      throw this.#writes.fail(
        new ReimageError(
          'REIMAGE_IMAGE_SIZE_MISMATCH',
          `The image ended at byte ${this.counters.imageBytes}, but its block map says it is ${map.imageSizeBytes} bytes. The image or the map is wrong; fetch both again.`,
          { evidence: { expected: map.imageSizeBytes, actual: this.counters.imageBytes } },
        ),
      );
    }
    return this.counters.imageBytes;
  }

  async #dispatch(): Promise<void> {
    this.#writes.throwIfFailed();
    this.#o.signal?.throwIfAborted();
    const block = this.#current;
    const length = this.#fill;
    const startBytes = this.#blockOffsetBytes;
    const endBytes = startBytes + length;
    // Never write past the known size (which fits the target): a file target would grow, a device
    // write would fail half-way, and the image is not the one its size promised.
    if (endBytes > this.#o.maxImageBytes) throw this.#writes.fail(this.#o.tooLong(endBytes));
    this.#o.imageHash?.update(block.subarray(0, length));
    this.counters.imageBytes = endBytes;
    let pendingWrites = 0;
    let releaseBlock = (): void => {};
    const released = new Promise<void>((resolvePromise) => {
      releaseBlock = resolvePromise;
    });
    const writeFromBlock = (fromBytes: number, toBytes: number): void => {
      pendingWrites++;
      this.#writes.track(
        this.#write(block.subarray(fromBytes - startBytes, toBytes - startBytes), fromBytes).finally(() => {
          pendingWrites--;
          if (pendingWrites === 0) releaseBlock();
        }),
      );
    };

    if (this.#o.blockMap !== undefined) {
      this.#dispatchMapped(block, startBytes, endBytes, writeFromBlock);
    } else {
      const segments = planBlockSegments(block.subarray(0, length), startBytes, this.#knownZero);
      this.#knownZero.fill(0);
      for (const segment of segments) {
        if (segment.zero) {
          if (this.#pendingZeroStart < 0) this.#pendingZeroStart = segment.startBytes;
          this.#pendingZeroEnd = segment.endBytes;
          continue;
        }
        await this.#flushZeroRun();
        writeFromBlock(segment.startBytes, segment.endBytes);
      }
    }
    if (pendingWrites === 0) releaseBlock();
    this.#blockOffsetBytes = endBytes;
    this.#fill = 0;
    void released.then(() => this.#blocks.give(block));
    if (this.#bufferedSinceFlush >= BUFFERED_FLUSH_EVERY_BYTES) {
      // Buffered writes only: wait for them and flush, so the page cache holds at most this much.
      this.#bufferedSinceFlush = 0;
      await this.#writes.drain();
      await this.#o.bufferedHandle.datasync();
    }
    this.#current = await this.#blocks.take(() => this.#writes.throwIfFailed());
  }

  /** Writes the parts of [startBytes, endBytes) that the map marks, feeding each range's digest. */
  #dispatchMapped(
    block: Buffer,
    startBytes: number,
    endBytes: number,
    writeFromBlock: (fromBytes: number, toBytes: number) => void,
  ): void {
    const map = this.#o.blockMap;
    if (map === undefined) return;
    let cursor = startBytes;
    while (cursor < endBytes) {
      const range: MappedRange | undefined = map.ranges[this.#rangeIndex];
      if (range === undefined || range.offsetBytes >= endBytes) {
        this.counters.bytesSkipped += endBytes - cursor;
        return;
      }
      if (range.offsetBytes > cursor) {
        this.counters.bytesSkipped += range.offsetBytes - cursor;
        cursor = range.offsetBytes;
      }
      const rangeEnd = range.offsetBytes + range.lengthBytes;
      const pieceEnd = Math.min(rangeEnd, endBytes);
      this.#rangeHash ??= createHash(map.checksumType ?? 'sha256');
      this.#rangeHash.update(block.subarray(cursor - startBytes, pieceEnd - startBytes));
      writeFromBlock(cursor, pieceEnd);
      cursor = pieceEnd;
      if (pieceEnd === rangeEnd) {
        const actual = this.#rangeHash.digest('hex');
        this.#rangeHash = undefined;
        this.rangeDigests[this.#rangeIndex] = actual;
        this.#rangeIndex++;
        if (range.checksum !== undefined && range.checksum !== actual) {
          const name =
            range.firstBlock === range.lastBlock ? `${range.firstBlock}` : `${range.firstBlock}-${range.lastBlock}`;
          throw this.#writes.fail(
            new ReimageError(
              'REIMAGE_IMAGE_RANGE_CHECKSUM_MISMATCH',
              `Mapped range ${name} (bytes ${range.offsetBytes}-${rangeEnd - 1}) of the image does not match its ${map.checksumType ?? 'sha256'} in the block map. The image or the map is damaged; fetch both again and rewrite.`,
              {
                evidence: {
                  range: name,
                  offsetBytes: range.offsetBytes,
                  lengthBytes: range.lengthBytes,
                  expected: range.checksum,
                  actual,
                },
              },
            ),
          );
        }
      }
    }
  }

  /** Ends a run of zero bytes: the kernel zeroes long runs, short ones (or all, as fallback) are written. */
  async #flushZeroRun(): Promise<void> {
    if (this.#pendingZeroStart < 0) return;
    // A run that covers LBA 0 leaves it to the held first sector: the kernel must not zero it early.
    const startBytes = this.#holdFirstSector(this.#pendingZeroStart, this.#pendingZeroEnd);
    const endBytes = this.#pendingZeroEnd;
    this.#pendingZeroStart = -1;
    this.#pendingZeroEnd = -1;
    if (startBytes >= endBytes) return;
    // A device zeroes whole 4 KiB units only (an image tail may end mid-sector, and a run may start
    // just past the held first sector), so the kernel gets the aligned middle and the rest is written.
    const kernelStartBytes = Math.min(
      endBytes,
      Math.ceil(startBytes / KERNEL_ZERO_UNIT_BYTES) * KERNEL_ZERO_UNIT_BYTES,
    );
    const kernelBytes = Math.floor((endBytes - kernelStartBytes) / KERNEL_ZERO_UNIT_BYTES) * KERNEL_ZERO_UNIT_BYTES;
    if (this.#kernelZeroing && kernelBytes >= MIN_KERNEL_ZERO_RUN_BYTES) {
      this.#writes.markTouched();
      if (kernelStartBytes > startBytes) this.#writes.track(this.#writeZeros(startBytes, kernelStartBytes));
      // The zeroing runs beside the decoding instead of stalling it: its range is disjoint from
      // every data write, so order does not matter. Only a few tool processes at a time.
      while (this.#kernelZeroOps.size >= KERNEL_ZERO_OPS_IN_FLIGHT) await Promise.race(this.#kernelZeroOps);
      const op = this.#zeroByKernel(kernelStartBytes, endBytes, kernelBytes).finally(() => {
        this.#kernelZeroOps.delete(op);
      });
      this.#kernelZeroOps.add(op);
      this.#writes.track(op);
      return;
    }
    this.#writes.track(this.#writeZeros(startBytes, endBytes));
  }

  /** Asks the kernel to zero the run; writes what it did not zero (all of it if it said no). */
  async #zeroByKernel(startBytes: number, endBytes: number, kernelBytes: number): Promise<void> {
    const zeroed = await zeroRange(this.#o.target, startBytes, kernelBytes, this.#o.signal);
    if (zeroed) {
      this.counters.bytesZeroed += kernelBytes;
      this.counters.bytesSkipped += kernelBytes;
      await this.#writeZeros(startBytes + kernelBytes, endBytes);
      return;
    }
    // Not supported here (filesystem, device or a missing tool): stop asking, write zeros.
    this.#kernelZeroing = false;
    await this.#writeZeros(startBytes, endBytes);
  }

  /** Writes zeros from the shared zero block, several writes at once. */
  async #writeZeros(startBytes: number, endBytes: number): Promise<void> {
    const writes: Promise<void>[] = [];
    for (let at = startBytes; at < endBytes; at += WRITE_BLOCK_BYTES) {
      const pieceEnd = Math.min(endBytes, at + WRITE_BLOCK_BYTES);
      writes.push(this.#write(this.#zeros.subarray(0, pieceEnd - at), at));
    }
    await Promise.all(writes);
  }

  /**
   * Copies the part of [startBytes, endBytes) that falls in the first logical block into the held
   * first sector (data the caller passes, else zeros) and returns where the rest starts.
   */
  #holdFirstSector(startBytes: number, endBytes: number, data?: Buffer): number {
    const held = this.#o.firstSector;
    if (startBytes >= held.length) return startBytes;
    const heldEndBytes = Math.min(held.length, endBytes);
    if (data === undefined) held.fill(0, startBytes, heldEndBytes);
    else data.copy(held, startBytes, 0, heldEndBytes - startBytes);
    this.#firstSectorHeld = true;
    return heldEndBytes;
  }

  /**
   * One positional write, through O_DIRECT when offset and length allow, else through the page
   * cache. Bytes for the first logical block are held back (docs/adr/0205), never written here.
   */
  async #write(data: Buffer, positionBytes: number): Promise<void> {
    const fromBytes = this.#holdFirstSector(positionBytes, positionBytes + data.length, data);
    if (fromBytes > positionBytes) {
      await this.#write(data.subarray(fromBytes - positionBytes), fromBytes);
      return;
    }
    if (data.length === 0) return;
    this.#writes.markTouched();
    const alignBytes = this.#o.target.directIoAlignmentBytes;
    let directBytes = 0;
    if (this.#o.direct && positionBytes % alignBytes === 0) {
      directBytes = data.length - (data.length % alignBytes);
      await writeAt(this.#o.handle, data.subarray(0, directBytes), positionBytes);
    }
    if (directBytes < data.length) {
      const rest = data.subarray(directBytes);
      await writeAt(this.#o.bufferedHandle, rest, positionBytes + directBytes);
      this.#bufferedSinceFlush += rest.length;
    }
    this.counters.bytesWritten += data.length;
  }
}
