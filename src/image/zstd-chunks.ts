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

/**
 * Decodes a zstd file in this thread into ONE reused output buffer, yielding views of it. Node's
 * zstd stream hands out a fresh Buffer per chunk, and allocating, faulting in and collecting 2 GiB
 * of them cost ~4× the decoding itself (docs/adr/0204). Each yielded view is valid only until
 * the consumer asks for the next one: copy what must be kept.
 *
 * `onInput` sees every compressed byte, in order (for the input digest). A damaged or truncated
 * stream throws REIMAGE_IMAGE_CORRUPT, exactly as the stream would (zstd's own end-of-frame check).
 */
export async function* zstdChunks(
  imagePath: string,
  o: { signal?: AbortSignal; onInput?: (chunk: Buffer) => void } = {},
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
  let file: FileHandle;
  try {
    file = await open(imagePath, 'r');
  } catch (e) {
    engine.close();
    throw imageUnreadable(imagePath, e);
  }
  const input = Buffer.allocUnsafe(INPUT_BYTES);
  const output = Buffer.allocUnsafe(OUTPUT_BYTES);
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      let got: number;
      try {
        ({ bytesRead: got } = await file.read(input, 0, INPUT_BYTES, null));
      } catch (e) {
        throw imageUnreadable(imagePath, e);
      }
      const last = got === 0;
      if (!last) o.onInput?.(input.subarray(0, got));
      let inOffset = 0;
      let inLength = got;
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
    await file.close();
  }
}
