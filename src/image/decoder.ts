import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { ReimageError } from '../core/reimage-error.ts';
import type { ImageFormat } from './image-format.ts';

/** How decoded output is chunked by in-process decoders: big enough to keep per-chunk costs low. */
const DECODE_CHUNK_BYTES = 1024 * 1024;

type DecoderSpec =
  | { readonly kind: 'none' }
  | { readonly kind: 'zlib'; readonly create: () => Duplex }
  | { readonly kind: 'tool'; readonly command: string; readonly args: readonly string[] };

/**
 * Which decoder handles which format, chosen by measurement (docs/adr/0201-decoders.md):
 * Node's zlib where it is as fast as the C tools (gzip, zstd: no process, no pipe copy), and a
 * system tool where it decodes on both cores (lbzip2, xz -T2), which Node cannot do.
 */
const DECODERS: Readonly<Record<ImageFormat, DecoderSpec>> = {
  raw: { kind: 'none' },
  gzip: { kind: 'zlib', create: () => createGunzip({ chunkSize: DECODE_CHUNK_BYTES }) },
  zstd: { kind: 'zlib', create: () => createZstdDecompress({ chunkSize: DECODE_CHUNK_BYTES }) },
  bzip2: { kind: 'tool', command: 'lbzip2', args: ['-d', '-c', '-n2'] },
  xz: { kind: 'tool', command: 'xz', args: ['-d', '-c', '-T2'] },
};

/**
 * The decoders decodeOnce (decode-once.ts) pipes into `zstd` for the formats that record no
 * decoded size, as separate processes so that their output goes straight into zstd's input,
 * never through Node (docs/adr/0206): lbzip2 decodes on both cores; pigz decodes gzip with
 * reading, writing and the CRC on threads of their own. Where one is missing, the writer takes
 * its older path (slower, same result).
 */
export const ONCE_DECODERS: Readonly<
  Partial<Record<ImageFormat, { command: string; args: readonly string[]; copyLevel: number }>>
> = {
  // The copy may not outgrow the compressed image (docs/adr/0206): bzip2 packs tighter than
  // zstd -3 (52.5 MB against a 52.0 MB .bz2 on the bench's image), -5 does not (50.3 MB).
  bzip2: { command: 'lbzip2', args: ['-d', '-c', '-n2'], copyLevel: 5 },
  // gzip packs looser than zstd -3 (62.6 MB .gz, 52.5 MB copy): the cheaper level fits.
  gzip: { command: 'pigz', args: ['-d', '-c'], copyLevel: 3 },
};

/**
 * The system binaries the decoders may spawn: the initramfs builder copies exactly these. zstd
 * keeps decodeOnce's copy and counts the decoded bytes; pigz is left out on purpose: the builder
 * refuses a tool the build host lacks, and gzip images decode without it (more slowly).
 */
export const DECODER_TOOLS: readonly string[] = [
  ...Object.values(DECODERS).flatMap((spec) => (spec.kind === 'tool' ? [spec.command] : [])),
  'zstd',
];

/** A decoder placed in a pipeline: compressed bytes in, image bytes out. */
export interface Decoder {
  /** The stage to put in the pipeline, or undefined for raw images. */
  readonly stage: Duplex | undefined;
  /**
   * Resolves once the decoder has finished cleanly; rejects with REIMAGE_IMAGE_CORRUPT if it
   * reported a damaged or truncated stream. Always await it: a tool's exit status arrives after
   * its output ends, and a stream that ends early must never pass for a short image.
   */
  readonly finished: Promise<void>;
  /** The decoder's own complaint, if it made one (preferred over a downstream EPIPE). */
  failure(): ReimageError | undefined;
  /** Stops a spawned tool (after an abort or a failure elsewhere). */
  kill(): void;
}

/** REIMAGE_IMAGE_CORRUPT for a decoder's complaint. */
export function corrupt(format: ImageFormat, imagePath: string, detail: string, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_IMAGE_CORRUPT',
    `The ${format} image ${imagePath} is damaged or truncated (${detail}). Fetch it again and check its SHA-256.`,
    { evidence: { path: imagePath, format, detail }, cause },
  );
}

export function createDecoder(format: ImageFormat, imagePath: string): Decoder {
  const spec = DECODERS[format];
  if (spec.kind === 'none') {
    return { stage: undefined, finished: Promise.resolve(), failure: () => undefined, kill() {} };
  }
  if (spec.kind === 'zlib') {
    const stage = spec.create();
    let failure: ReimageError | undefined;
    const finished = new Promise<void>((resolvePromise, rejectPromise) => {
      stage.on('error', (e: unknown) => {
        // Torn down because a later stage failed: that stage's error is the one to report.
        const code = (e as { code?: unknown }).code;
        if (code === 'ABORT_ERR' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
          rejectPromise(e);
          return;
        }
        failure = corrupt(format, imagePath, e instanceof Error ? e.message : String(e), e);
        rejectPromise(failure);
      });
      stage.on('end', () => resolvePromise());
    });
    // The pipeline reports the error too; this copy only exists to be awaited.
    finished.catch(() => {});
    return { stage, finished, failure: () => failure, kill() {} };
  }
  return toolDecoder(format, imagePath, spec.command, spec.args);
}

function toolDecoder(format: ImageFormat, imagePath: string, command: string, args: readonly string[]): Decoder {
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(command, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderrChunks: Buffer[] = [];
  let stderrBytes = 0;
  child.stderr.on('data', (chunk: Buffer) => {
    // Keep the start of what it said; a broken stream can make a tool repeat itself.
    if (stderrBytes < 8192) stderrChunks.push(chunk);
    stderrBytes += chunk.length;
  });
  let failure: ReimageError | undefined;
  const stage = Duplex.from({ writable: child.stdin, readable: child.stdout });
  const finished = new Promise<void>((resolvePromise, rejectPromise) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      failure =
        e.code === 'ENOENT'
          ? new ReimageError(
              'REIMAGE_TOOL_MISSING',
              `The ${format} decoder "${command}" is not installed. Install the Debian package "${command === 'lbzip2' ? 'lbzip2' : 'xz-utils'}".`,
              { evidence: { command }, cause: e },
            )
          : corrupt(format, imagePath, e.message, e);
      rejectPromise(failure);
    });
    // 'exit', not 'close': after an abort the pipeline may leave stdout unread, and 'close'
    // waits for it forever. The pipeline itself proves all output was consumed.
    child.on('exit', (code, signalName) => {
      if (code === 0) {
        resolvePromise();
        return;
      }
      const fail = (): void => {
        const said = Buffer.concat(stderrChunks).toString('utf8').trim().split('\n')[0] ?? '';
        const detail = `${command} ${signalName ?? `exited with ${code}`}${said ? `: ${said}` : ''}`;
        failure ??= corrupt(format, imagePath, detail);
        rejectPromise(failure);
      };
      // The tool is gone, so its stderr ends at once; waiting for it gets its complaint in full.
      if (child.stderr.readableEnded || child.stderr.destroyed) fail();
      else child.stderr.once('close', fail);
    });
  });
  finished.catch(() => {});
  return {
    stage,
    finished,
    failure: () => failure,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      child.stdout.destroy();
      child.stdin.destroy();
    },
  };
}

/**
 * Every system binary writeImage may run: the decoders, plus util-linux `fallocate` (zero ranges
 * without sending zeros) and `blockdev` (partition table re-read). Without the last two the write
 * still succeeds, only slower or with a warning.
 */
export const WRITER_TOOLS: readonly string[] = [...DECODER_TOOLS, 'fallocate', 'blockdev', 'partx'];
