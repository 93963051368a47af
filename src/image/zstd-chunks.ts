import { type FileHandle, open } from 'node:fs/promises';
import { createZstdDecompress } from 'node:zlib';
import { corrupt } from './decoder.ts';
import { imageUnreadable } from './image-format.ts';

/** Decoded bytes per step, into one buffer reused for the whole image. */
const OUTPUT_BYTES = 1024 * 1024;
/** Compressed bytes per read. */
const INPUT_BYTES = 1024 * 1024;
// zstd's ZSTD_EndDirective values, as node:zlib's constants name them.
const ZSTD_E_CONTINUE = 0;
const ZSTD_E_END = 2;

/** The undocumented engine internals Node's own zlib.*Sync functions drive (lib/zlib.js processChunkSync). */
interface EngineInternals {
  readonly _handle?: {
    writeSync?: (
      flush: number,
      input: Buffer,
      inOffset: number,
      inLength: number,
      output: Buffer,
      outOffset: number,
      outLength: number,
    ) => void;
  };
  /** [availOutAfter, availInAfter] after each writeSync. */
  readonly _writeState?: unknown;
}

let available: boolean | undefined;

/**
 * Whether this Node exposes the zstd engine's synchronous step (the one `zlib.zstdDecompressSync`
 * uses). If a future Node drops it, the writer falls back to the stream (slower, same result).
 */
export function reusableZstdAvailable(): boolean {
  if (available !== undefined) return available;
  try {
    const engine = createZstdDecompress() as unknown as EngineInternals;
    available = typeof engine._handle?.writeSync === 'function' && engine._writeState instanceof Uint32Array;
    (engine as unknown as { close(): void }).close();
  } catch {
    available = false;
  }
  return available;
}

/** Where zstdChunks takes its compressed bytes from. */
export interface ZstdChunksOptions {
  readonly signal?: AbortSignal;
  /** Sees every compressed byte read from the file, in order (for the input digest). */
  readonly onInput?: (chunk: Buffer) => void;
  /**
   * The compressed bytes, already in memory (a decoded-once copy, see decode-once.ts): the file
   * is not read at all, and `imagePath` only names the image in errors.
   */
  readonly frames?: readonly Buffer[];
}

/**
 * Decodes a zstd file in this thread into ONE reused output buffer, yielding views of it. Node's
 * zstd stream hands out a fresh Buffer per chunk, and allocating, faulting in and collecting 2 GiB
 * of them cost ~4× the decoding itself (docs/adr/0204). Each yielded view is valid only until
 * the consumer asks for the next one: copy what must be kept.
 *
 * The file is read ahead: two input buffers, the next read in flight while the current one
 * decodes, so this thread never waits for the disk (docs/adr/0206). `onInput` sees every
 * compressed byte, in order (for the input digest). A damaged or truncated stream throws
 * REIMAGE_IMAGE_CORRUPT, exactly as the stream would (zstd's own end-of-frame check).
 */
export async function* zstdChunks(
  imagePath: string,
  o: ZstdChunksOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const engine = createZstdDecompress();
  const internals = engine as unknown as EngineInternals;
  const step = internals._handle?.writeSync;
  const state = internals._writeState;
  if (step === undefined || !(state instanceof Uint32Array)) throw new Error('zstd engine internals unavailable');
  let engineError: unknown;
  // The engine reports errors by destroying itself; the event follows on the next tick.
  engine.on('error', (e: unknown) => {
    engineError = e;
  });
  const handle = internals._handle;
  const fail = async (): Promise<never> => {
    await new Promise<void>((resolvePromise) => setImmediate(resolvePromise));
    const message = engineError instanceof Error ? engineError.message : 'the decoder stopped';
    throw corrupt('zstd', imagePath, message, engineError);
  };
  let source: InputSource;
  try {
    source = o.frames === undefined ? await fileSource(imagePath) : framesSource(o.frames);
  } catch (e) {
    engine.close();
    throw imageUnreadable(imagePath, e);
  }
  const output = Buffer.allocUnsafe(OUTPUT_BYTES);
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      let input: Buffer;
      try {
        input = await source.next();
      } catch (e) {
        throw imageUnreadable(imagePath, e);
      }
      const last = input.length === 0;
      if (!last) o.onInput?.(input);
      let inOffset = 0;
      let inLength = input.length;
      for (;;) {
        step.call(handle, last ? ZSTD_E_END : ZSTD_E_CONTINUE, input, inOffset, inLength, output, 0, OUTPUT_BYTES);
        if (engine.destroyed) await fail();
        const availOut = state[0] ?? 0;
        const availIn = state[1] ?? 0;
        const produced = OUTPUT_BYTES - availOut;
        const consumed = inLength - availIn;
        inOffset += consumed;
        inLength = availIn;
        if (produced > 0) yield output.subarray(0, produced);
        // A full output buffer may mean more is pending inside the engine: step again.
        if (availOut === 0) continue;
        if (inLength === 0) break;
        // Room left and input left: a frame ended mid-buffer; the next step starts the next frame.
        if (produced === 0 && consumed === 0) throw corrupt('zstd', imagePath, 'the decoder made no progress');
      }
      if (last) return;
    }
  } finally {
    engine.close();
    await source.close();
  }
}

/** Compressed input, one piece at a time; an empty piece is the end. */
interface InputSource {
  /** The next piece; valid until the one after it is asked for. */
  next(): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * The file, read ahead into two alternating buffers: while one is decoded, the next read runs in
 * the thread pool (measured on the bench's 2 GiB .zst with a block map: docs/adr/0206).
 */
async function fileSource(imagePath: string): Promise<InputSource> {
  const file: FileHandle = await open(imagePath, 'r');
  const buffers = [Buffer.allocUnsafe(INPUT_BYTES), Buffer.allocUnsafe(INPUT_BYTES)] as const;
  let positionBytes = 0;
  let which = 0;
  const read = (buffer: Buffer): Promise<Buffer> => {
    const at = positionBytes;
    return file.read(buffer, 0, INPUT_BYTES, at).then(({ bytesRead }) => {
      positionBytes = at + bytesRead;
      return buffer.subarray(0, bytesRead);
    });
  };
  let pending: Promise<Buffer> | undefined = read(buffers[0]);
  // Awaited in next(); until then a failed read must not count as unhandled.
  pending.catch(() => {});
  return {
    async next(): Promise<Buffer> {
      if (pending === undefined) return Buffer.alloc(0);
      const piece = await pending;
      which ^= 1;
      // The other buffer was handed out one call ago, so it is free now: read into it.
      pending = piece.length === 0 ? undefined : read(buffers[which] ?? buffers[0]);
      pending?.catch(() => {});
      return piece;
    },
    async close(): Promise<void> {
      await pending?.catch(() => {});
      await file.close();
    },
  };
}

function framesSource(frames: readonly Buffer[]): InputSource {
  let index = 0;
  return {
    async next(): Promise<Buffer> {
      return frames[index++] ?? Buffer.alloc(0);
    },
    async close(): Promise<void> {},
  };
}
