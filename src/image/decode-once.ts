import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { freemem } from 'node:os';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../core/logger.ts';
import { onPath } from '../core/on-path.ts';
import type { OnProgress } from '../core/progress.ts';
import { throttleProgress } from '../core/progress.ts';
import type { ReimageError } from '../core/reimage-error.ts';
import { corrupt, ONCE_DECODERS } from './decoder.ts';
import type { ImageFormat } from './image-format.ts';
import { imageUnreadable } from './image-format.ts';
import { zstdChunks } from './zstd-chunks.ts';

/** The copy is kept in slabs of this size: pipe reads come in 64 KiB pieces, each with its own allocation. */
const COPY_SLAB_BYTES = 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;

/** What one decode before the write found out. */
export interface DecodedOnce {
  /** SHA-256 of the whole image file (compressed bytes), as read. */
  readonly inputSha256: string;
  /** Bytes of the image file read. */
  readonly bytesIn: number;
  /**
   * The decoder's verdict: REIMAGE_IMAGE_CORRUPT when the stream is damaged or truncated. Left to
   * the caller, who checks the digest first: a wrong file must be reported as the wrong file.
   */
  readonly failure: ReimageError | undefined;
  /** The exact decoded size; undefined when zstd's report could not be read and no copy is left to count. */
  readonly sizeBytes: number | undefined;
  /** The decoded image as zstd frames in memory, or undefined when it outgrew the budget. */
  readonly copy: readonly Buffer[] | undefined;
  /** Compressed bytes zstd produced (the copy's size, or how far it got). */
  readonly copyBytes: number;
}

/**
 * The most the decoded copy may hold (docs/adr/0206): never more than the compressed image
 * (DESIGN's memory rule allows the image in RAM, and on a host the image stays in its file), never
 * more than a quarter of MemAvailable, never more than the caller allows.
 */
export async function decodedCopyBudgetBytes(imagePath: string, callerMaxBytes: number | undefined): Promise<number> {
  const compressedBytes = (await stat(imagePath)).size;
  const availableBytes = await memAvailableBytes();
  return Math.max(0, Math.min(compressedBytes, Math.floor(availableBytes / 4), callerMaxBytes ?? Infinity));
}

/** MemAvailable from /proc/meminfo (what can be allocated without swapping); os.freemem() if unreadable. */
export async function memAvailableBytes(): Promise<number> {
  try {
    const match = /^MemAvailable:\s+(\d+) kB$/m.exec(await readFile('/proc/meminfo', 'utf8'));
    if (match?.[1] !== undefined) return Number(match[1]) * 1024;
  } catch {
    // Not Linux, or /proc not mounted: Node's own figure.
  }
  return freemem();
}

/**
 * Whether decodeOnce can run for this format here: a decoder for it, and both tools installed.
 * Without them the writer takes its older path (a size test or count, then the write).
 */
function canDecodeOnce(format: ImageFormat): boolean {
  const spec = ONCE_DECODERS[format];
  if (spec === undefined) return false;
  return onPath(spec.command) && onPath('zstd');
}

/**
 * decodeOnce where it pays (docs/adr/0206): a format that records no decoded size (bzip2, gzip),
 * no size known otherwise (a block map, the caller), the copy allowed (`copyMaxBytes` not 0), and
 * the tools installed. Undefined otherwise, or when zstd failed: the caller takes the older path.
 */
export async function decodeOnceIfUseful(o: {
  imagePath: string;
  format: ImageFormat;
  sizeKnown: boolean;
  copyMaxBytes: number | undefined;
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<DecodedOnce | undefined> {
  if (o.sizeKnown || o.copyMaxBytes === 0 || !canDecodeOnce(o.format)) return undefined;
  let budgetBytes: number;
  try {
    budgetBytes = await decodedCopyBudgetBytes(o.imagePath, o.copyMaxBytes);
  } catch (e) {
    throw imageUnreadable(o.imagePath, e);
  }
  o.log.info(
    `the ${o.format} image does not record its size: decoding it once (in-memory copy up to ${budgetBytes} bytes)`,
  );
  return decodeOnce({ ...o, budgetBytes });
}

/**
 * Decodes a bzip2 or gzip image once, before the target is opened (docs/adr/0206): Node reads the
 * file, hashing it, into the decoder; the decoder's output goes straight into `zstd -vv`, child to
 * child, so the decoded gigabytes never enter Node; Node keeps zstd's output as an in-memory copy
 * up to `budgetBytes`, and past it drops the copy and only lets zstd count. The decoder's exit
 * status says whether the stream is intact; zstd's report gives the exact decoded size.
 *
 * Returns undefined when zstd itself failed (the image is not to blame: the caller takes the
 * older path). An abort kills both children and throws the abort's error.
 */
export async function decodeOnce(o: {
  imagePath: string;
  format: ImageFormat;
  budgetBytes: number;
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<DecodedOnce | undefined> {
  const spec = ONCE_DECODERS[o.format];
  if (spec === undefined) throw new Error(`decodeOnce: no decoder for ${o.format}`);
  o.signal?.throwIfAborted();
  const totalBytes = (await stat(o.imagePath)).size;
  const decoder = spawn(spec.command, spec.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const zstd = spawn('zstd', [`-${spec.copyLevel}`, '-vv', '--no-progress', '-c'], {
    stdio: [decoder.stdout, 'pipe', 'pipe'],
  });
  // zstd holds the pipe's read end now; Node's copy would only keep it open after zstd exits.
  decoder.stdout.destroy();
  const decoderSaid = collectStderr(decoder);
  const zstdSaid = collectStderr(zstd);
  const decoderExit = exitOf(decoder);
  const zstdExit = exitOf(zstd);
  const killBoth = (): void => {
    for (const child of [decoder, zstd]) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
  o.signal?.addEventListener('abort', killBoth, { once: true });
  // zstd gone early would leave the decoder blocked on a full pipe, and Node blocked feeding it.
  void zstdExit.then((status) => {
    if (status.error !== undefined || status.code !== 0) killBoth();
  });

  const hash = createHash('sha256');
  let bytesIn = 0;
  const progress = throttleProgress(o.onProgress);
  const feeding = pipeline(
    createReadStream(o.imagePath, { highWaterMark: READ_CHUNK_BYTES }),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        bytesIn += chunk.length;
        progress.report({ phase: 'measure image', done: bytesIn, total: totalBytes, unit: 'bytes' });
        yield chunk;
      }
    },
    decoder.stdin,
    o.signal === undefined ? {} : { signal: o.signal },
  );
  const copy = new CopyBuilder(o.budgetBytes);
  const draining = (async () => {
    for await (const chunk of zstd.stdout as Readable as AsyncIterable<Buffer>) copy.append(chunk);
  })();

  try {
    const [fed, drained] = await Promise.allSettled([feeding, draining]);
    const [decoderStatus, zstdStatus] = await Promise.all([decoderExit, zstdExit]);
    o.signal?.throwIfAborted();
    if (zstdStatus.error !== undefined || zstdStatus.code !== 0 || drained.status === 'rejected') {
      // zstd failed (or is missing): the image may be fine; the older path will tell.
      const said = zstdStatus.error?.message ?? (await zstdSaid).trim().split('\n').at(-1) ?? '';
      o.log.warn(`decoding the image once failed in zstd (${said}); measuring it the slower way`);
      return undefined;
    }
    progress.flush({ phase: 'measure image', done: bytesIn, total: totalBytes, unit: 'bytes' });
    // A decoder that died mid-stream shows up first as a broken pipe on its input: its exit
    // status, not the pipe, says what happened.
    let failure: ReimageError | undefined;
    if (decoderStatus.error !== undefined || decoderStatus.code !== 0) {
      const said = (await decoderSaid).trim().split('\n')[0] ?? '';
      const how =
        decoderStatus.error?.message ??
        (decoderStatus.signal !== null ? `killed by ${decoderStatus.signal}` : `exited with ${decoderStatus.code}`);
      failure = corrupt(o.format, o.imagePath, `${spec.command} ${how}${said ? `: ${said}` : ''}`);
    } else if (fed.status === 'rejected') {
      if (isUnreadable(fed.reason)) throw imageUnreadable(o.imagePath, fed.reason);
      // The decoder ended well but stopped reading: what it left is not part of the image.
      failure = corrupt(o.format, o.imagePath, `${spec.command} stopped reading at byte ${bytesIn}`);
    }
    if (failure !== undefined) {
      // The caller checks the digest before reporting the damage: finish hashing the file.
      await hashRest(o.imagePath, hash, bytesIn, o.signal);
      return {
        inputSha256: hash.digest('hex'),
        bytesIn: totalBytes,
        failure,
        sizeBytes: undefined,
        copy: undefined,
        copyBytes: copy.bytes,
      };
    }
    const frames = copy.frames();
    let sizeBytes = parseZstdSize(await zstdSaid);
    if (sizeBytes === undefined && frames !== undefined) {
      o.log.info("zstd's report gave no size: counting the decoded copy");
      sizeBytes = await countFrames(o.imagePath, frames, o.signal);
    }
    o.log.info(
      `decoded the ${o.format} image once: ${sizeBytes ?? 'unknown'} bytes; in-memory copy ${
        frames === undefined ? `dropped at ${copy.bytes} bytes (budget ${o.budgetBytes})` : `${copy.bytes} bytes`
      }`,
    );
    return {
      inputSha256: hash.digest('hex'),
      bytesIn,
      failure: undefined,
      sizeBytes,
      copy: frames,
      copyBytes: copy.bytes,
    };
  } finally {
    o.signal?.removeEventListener('abort', killBoth);
    killBoth();
    await Promise.allSettled([decoderExit, zstdExit, feeding, draining]);
  }
}

/** zstd -vv's summary line: "/*stdin*\\ : 2.39%   (2147483648 B => 51234567 B, /*stdout*\\)". */
export function parseZstdSize(report: string): number | undefined {
  const match = /\(\s*(\d+) B =>/.exec(report);
  if (match?.[1] === undefined) return undefined;
  const sizeBytes = Number(match[1]);
  return Number.isSafeInteger(sizeBytes) ? sizeBytes : undefined;
}

async function countFrames(
  imagePath: string,
  frames: readonly Buffer[],
  signal: AbortSignal | undefined,
): Promise<number> {
  let sizeBytes = 0;
  for await (const chunk of zstdChunks(imagePath, { frames, ...(signal === undefined ? {} : { signal }) })) {
    sizeBytes += chunk.length;
  }
  return sizeBytes;
}

async function hashRest(path: string, hash: Hash, fromBytes: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await pipeline(
      createReadStream(path, { start: fromBytes, highWaterMark: READ_CHUNK_BYTES }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) hash.update(chunk);
      },
      signal === undefined ? {} : { signal },
    );
  } catch (e) {
    signal?.throwIfAborted();
    throw imageUnreadable(path, e);
  }
}

/** A read of the image failed (not a pipe to the decoder). */
function isUnreadable(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code !== 'EPIPE' && code !== 'ERR_STREAM_PREMATURE_CLOSE' && code !== 'ERR_STREAM_DESTROYED';
}

/** zstd's output, gathered into slabs while it fits the budget; past it, only counted. */
class CopyBuilder {
  readonly #budgetBytes: number;
  #slabs: Buffer[] | undefined = [];
  #used = 0;
  bytes = 0;

  constructor(budgetBytes: number) {
    this.#budgetBytes = budgetBytes;
  }

  append(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.#slabs === undefined) return;
    if (this.bytes > this.#budgetBytes) {
      // Over budget: let the garbage go, keep counting (the write decodes the image again).
      this.#slabs = undefined;
      return;
    }
    let from = 0;
    while (from < chunk.length) {
      let slab = this.#slabs.at(-1);
      if (slab === undefined || this.#used === slab.length) {
        slab = Buffer.allocUnsafeSlow(COPY_SLAB_BYTES);
        this.#slabs.push(slab);
        this.#used = 0;
      }
      const n = chunk.copy(slab, this.#used, from);
      this.#used += n;
      from += n;
    }
  }

  /** The copy, or undefined when it was dropped. */
  frames(): readonly Buffer[] | undefined {
    const slabs = this.#slabs;
    if (slabs === undefined) return undefined;
    const last = slabs.at(-1);
    if (last !== undefined && this.#used < last.length) {
      // The unused tail of the last slab goes back: copied, so its 1 MiB can be collected.
      slabs[slabs.length - 1] = Buffer.from(last.subarray(0, this.#used));
    }
    return slabs;
  }
}

interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Could not run at all (ENOENT…). */
  readonly error: Error | undefined;
}

function exitOf(child: ChildProcess): Promise<ExitStatus> {
  return new Promise((resolvePromise) => {
    child.once('error', (error) => resolvePromise({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolvePromise({ code, signal, error: undefined }));
  });
}

/** The start of what a child says on stderr (a broken stream can make a tool repeat itself). */
function collectStderr(child: ChildProcess): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  child.stderr?.on('data', (chunk: Buffer) => {
    if (bytes < 16384) chunks.push(chunk);
    bytes += chunk.length;
  });
  return new Promise((resolvePromise) => {
    const done = (): void => resolvePromise(Buffer.concat(chunks).toString('utf8'));
    if (child.stderr === null) done();
    else child.stderr.once('close', done);
  });
}
