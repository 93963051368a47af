import type { ByteRange } from '../disk/index.ts';
import { type OpenedTarget, type TargetInfo, writeAt } from '../disk/index.ts';
import { BlockPool } from './block-pool.ts';
import { WRITE_BLOCK_BYTES, WRITE_BLOCKS_IN_FLIGHT } from './block-sink.ts';
import { mappedEndBytes, rangesPastImage } from './check-mapped-ranges.ts';
import { MappedRangeWalker, resumeOffsetBytes } from './mapped-range-walker.ts';
import { WritesInFlight } from './writes-in-flight.ts';

/** Memory a MappedSink needs: its write blocks in flight (aligned for O_DIRECT by openTarget). */
export const MAPPED_SINK_SLAB_BYTES = WRITE_BLOCKS_IN_FLIGHT * WRITE_BLOCK_BYTES;

export interface MappedSinkCounters {
  /** Decoded image bytes seen. */
  imageBytes: number;
  /** Mapped bytes passed, in order: written, held (LBA 0), or durable before this run. */
  mappedBytesDone: number;
  /** Bytes issued to the target (all inside the ranges, never LBA 0). */
  bytesWritten: number;
  /** Of those, bytes that went through the page cache (not whole O_DIRECT units). */
  bytesBuffered: number;
  /** Mapped bytes not written because they were durable before this run. */
  bytesResumed: number;
  /** The last figure handed to onDurable. */
  durableBytes: number;
}

export interface MappedSinkOptions {
  readonly target: TargetInfo;
  readonly opened: OpenedTarget;
  readonly imagePath: string;
  readonly ranges: readonly ByteRange[];
  readonly totalBytes: number;
  readonly durableBytes: number;
  readonly checkpointBytes: number;
  readonly onDurable: (durableBytes: number) => Promise<void>;
  /** Called once, before the first write is issued. */
  readonly onTouch: () => void;
  readonly signal?: AbortSignal | undefined;
}

/** Where one piece of a block goes: disk-contiguous bytes at a place in the block buffer. */
interface BlockPiece {
  readonly diskOffsetBytes: number;
  readonly bufferOffsetBytes: number;
  lengthBytes: number;
}

const alignUp = (value: number, alignBytes: number): number => Math.ceil(value / alignBytes) * alignBytes;

/**
 * The armed write's sink: takes the decoded image in order and writes exactly the bytes of the
 * ranges — zero runs inside them included, since a file's block of zeros is data and the old
 * bytes under it are not zeros — and nothing else. The first logical block is copied into
 * `firstSector`, never written (docs/adr/0205). Mapped bytes before the resume point are passed
 * over. Every `checkpointBytes` written it waits for the writes, fdatasyncs, and only then hands
 * the mapped position to onDurable, so the figure never runs ahead of the disk.
 *
 * Bytes are gathered into 4 MiB blocks (up to 4 in flight, the writer's tuning: ADR 0202): each
 * block holds pieces of several ranges, a piece at a buffer offset congruent to its disk offset,
 * so its whole aligned units go through O_DIRECT from aligned memory and only a range's unaligned
 * head or tail (a 512-byte-sector range on a 4096-byte target) goes through the page cache.
 */
export class MappedSink {
  readonly counters: MappedSinkCounters = {
    imageBytes: 0,
    mappedBytesDone: 0,
    bytesWritten: 0,
    bytesBuffered: 0,
    bytesResumed: 0,
    durableBytes: 0,
  };
  /** The image's first logical block, for commitFirstSector. */
  readonly firstSector: Buffer;

  readonly #o: MappedSinkOptions;
  readonly #walker: MappedRangeWalker;
  readonly #alignBytes: number;
  /** Disk offset from which bytes are written (before it: LBA 0, or durable before this run). */
  readonly #writeFromBytes: number;
  readonly #blocks: BlockPool;
  #current: Buffer;
  #pieces: BlockPiece[] = [];
  #fill = 0;
  /** Mapped position just after the last byte put in the current block. */
  #blockMappedEndBytes = 0;
  #sinceCheckpointBytes = 0;
  readonly #writes: WritesInFlight;

  constructor(o: MappedSinkOptions) {
    this.#o = o;
    this.#writes = new WritesInFlight(o.onTouch);
    this.#walker = new MappedRangeWalker(o.ranges);
    this.#alignBytes = o.target.directIoAlignmentBytes;
    this.firstSector = Buffer.alloc(Math.min(o.target.logicalBlockSizeBytes, o.target.sizeBytes));
    this.#writeFromBytes = Math.max(
      this.firstSector.length,
      resumeOffsetBytes(o.ranges, o.durableBytes, this.#alignBytes),
    );
    this.counters.durableBytes = o.durableBytes;
    this.#blocks = new BlockPool(o.opened.slab, WRITE_BLOCKS_IN_FLIGHT, WRITE_BLOCK_BYTES);
    this.#current = this.#blocks.takeNow();
  }

  /** Takes the next decoded bytes of the image; resolves when the sink can take more. */
  async push(chunk: Buffer): Promise<void> {
    const startBytes = this.counters.imageBytes;
    this.counters.imageBytes += chunk.length;
    for (const piece of this.#walker.piecesOf(startBytes, chunk.length)) {
      let diskBytes = piece.diskOffsetBytes;
      let mappedBytes = piece.mappedOffsetBytes;
      const endBytes = diskBytes + piece.lengthBytes;
      // Held back for the commit; counted as done (see writeMappedRanges).
      if (diskBytes < this.firstSector.length) {
        const heldEnd = Math.min(endBytes, this.firstSector.length);
        chunk.copy(this.firstSector, diskBytes, diskBytes - startBytes, heldEnd - startBytes);
        mappedBytes += heldEnd - diskBytes;
        diskBytes = heldEnd;
      }
      if (diskBytes < this.#writeFromBytes) {
        const skipEnd = Math.min(endBytes, this.#writeFromBytes);
        this.counters.bytesResumed += skipEnd - diskBytes;
        mappedBytes += skipEnd - diskBytes;
        diskBytes = skipEnd;
      }
      this.counters.mappedBytesDone = mappedBytes;
      if (diskBytes < endBytes) await this.#append(chunk, startBytes, diskBytes, mappedBytes, endBytes - diskBytes);
      this.counters.mappedBytesDone = piece.mappedOffsetBytes + piece.lengthBytes;
    }
  }

  /** Copies disk bytes [diskBytes, +lengthBytes) of the chunk into blocks, dispatching full ones. */
  async #append(
    chunk: Buffer,
    chunkStartBytes: number,
    diskBytes: number,
    mappedBytes: number,
    lengthBytes: number,
  ): Promise<void> {
    let disk = diskBytes;
    let mapped = mappedBytes;
    let left = lengthBytes;
    while (left > 0) {
      const last = this.#pieces.at(-1);
      const contiguous = last !== undefined && last.diskOffsetBytes + last.lengthBytes === disk;
      // Same offset modulo the alignment in the buffer as on the disk: aligned units stay aligned.
      const at = contiguous ? this.#fill : alignUp(this.#fill, this.#alignBytes) + (disk % this.#alignBytes);
      // Cut at the next checkpoint (on an aligned unit, so the cut piece stays O_DIRECT).
      const budgetBytes = this.#o.checkpointBytes - this.#sinceCheckpointBytes;
      const limit = Math.min(WRITE_BLOCK_BYTES, alignUp(at + budgetBytes, this.#alignBytes));
      if (at >= limit) {
        await this.#dispatch();
        continue;
      }
      const take = Math.min(left, limit - at);
      chunk.copy(this.#current, at, disk - chunkStartBytes, disk - chunkStartBytes + take);
      if (contiguous && last !== undefined) last.lengthBytes += take;
      else this.#pieces.push({ diskOffsetBytes: disk, bufferOffsetBytes: at, lengthBytes: take });
      this.#fill = at + take;
      this.#sinceCheckpointBytes += take;
      disk += take;
      mapped += take;
      left -= take;
      this.#blockMappedEndBytes = mapped;
      this.counters.mappedBytesDone = mapped;
      if (this.#fill >= limit) await this.#dispatch();
    }
  }

  /** After a failure elsewhere: writes nothing more, only lets the writes in flight settle. */
  async settle(): Promise<void> {
    await this.#writes.settle();
  }

  /**
   * After the last decoded byte: refuses an image that ended inside the map, writes what is left,
   * waits for every write, fdatasyncs, and reports the whole map durable.
   */
  async end(): Promise<void> {
    const endBytes = mappedEndBytes(this.#o.ranges);
    if (this.counters.imageBytes < endBytes) {
      throw this.#writes.fail(rangesPastImage(this.#o.imagePath, this.counters.imageBytes, endBytes));
    }
    if (this.#pieces.length > 0) await this.#dispatch();
    await this.#checkpoint(this.#o.totalBytes);
  }

  /** Waits for every write issued, fdatasyncs, then reports `mappedBytes` durable. */
  async #checkpoint(mappedBytes: number): Promise<void> {
    await this.#writes.drain();
    this.#o.signal?.throwIfAborted();
    const { handle, bufferedHandle } = this.#o.opened;
    // fdatasync on a block device also flushes the device's write cache (blkdev_fsync).
    await bufferedHandle.datasync();
    if (handle !== bufferedHandle) await handle.datasync();
    // A resumed run may restart a little before its resume figure (an aligned unit): never go back.
    const figure = Math.max(mappedBytes, this.#o.durableBytes);
    await this.#o.onDurable(figure);
    this.counters.durableBytes = figure;
  }

  async #dispatch(): Promise<void> {
    this.#writes.throwIfFailed();
    this.#o.signal?.throwIfAborted();
    const block = this.#current;
    const pieces = this.#pieces;
    const blockMappedEndBytes = this.#blockMappedEndBytes;
    this.#pieces = [];
    this.#fill = 0;
    const writes = pieces.map((piece) => this.#writePiece(block, piece));
    for (const write of writes) this.#writes.track(write);
    void Promise.allSettled(writes).then(() => this.#blocks.give(block));
    if (this.#sinceCheckpointBytes >= this.#o.checkpointBytes) {
      this.#sinceCheckpointBytes = 0;
      await this.#checkpoint(blockMappedEndBytes);
    }
    this.#current = await this.#blocks.take(() => this.#writes.throwIfFailed());
  }

  /**
   * One piece: its whole aligned units through O_DIRECT, an unaligned head or tail through the
   * page cache (flushed by the next checkpoint's fdatasync). Never a byte outside the piece.
   */
  async #writePiece(block: Buffer, piece: BlockPiece): Promise<void> {
    this.#writes.markTouched();
    const { opened } = this.#o;
    const startBytes = piece.diskOffsetBytes;
    const endBytes = startBytes + piece.lengthBytes;
    const bytesAt = (fromBytes: number, toBytes: number): Buffer =>
      block.subarray(
        piece.bufferOffsetBytes + (fromBytes - startBytes),
        piece.bufferOffsetBytes + (toBytes - startBytes),
      );
    const directFrom = opened.direct ? Math.min(endBytes, alignUp(startBytes, this.#alignBytes)) : endBytes;
    const directTo = opened.direct ? Math.max(directFrom, endBytes - (endBytes % this.#alignBytes)) : endBytes;
    const writes: Promise<void>[] = [];
    if (directTo > directFrom) writes.push(writeAt(opened.handle, bytesAt(directFrom, directTo), directFrom));
    for (const [fromBytes, toBytes] of [
      [startBytes, directFrom],
      [directTo, endBytes],
    ] as const) {
      if (toBytes <= fromBytes) continue;
      this.counters.bytesBuffered += toBytes - fromBytes;
      writes.push(writeAt(opened.bufferedHandle, bytesAt(fromBytes, toBytes), fromBytes));
    }
    // Every write of the piece settles before its block may be reused, even when one fails.
    const failed = (await Promise.allSettled(writes)).find((result) => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.counters.bytesWritten += piece.lengthBytes;
  }
}
