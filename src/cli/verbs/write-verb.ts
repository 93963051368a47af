import { parseArgs } from 'node:util';
import { ReimageError } from '../../core/reimage-error.ts';
import { writeImage } from '../../image/index.ts';
import type { Verb, VerbContext } from '../verb.ts';

const HELP = `reimage write IMAGE TARGET [--sha256 HEX] [--bmap FILE] [--verify] [--image-size BYTES] [--json]

Writes a disk image onto TARGET (a block device, or an existing disk image file that is never
grown or truncated; bytes past the image's end stay as they were).

IMAGE may be raw, gzip, bzip2, xz or zstd; the format is found from its first bytes, not its name.

  --sha256 HEX       the SHA-256 of IMAGE as given (compressed bytes). The whole file is checked
                     before the first byte of TARGET changes; a mismatch leaves TARGET untouched.
                     Without it the image is written unverified, and reimage says so.
  --bmap FILE        a block map from "bmaptool create": only mapped ranges are written, and each
                     range's checksum from the map is checked as it is written.
  --verify           read back what was written (the mapped ranges with --bmap) and compare.
  --image-size BYTES the decoded size, if known: spares bzip2 and gzip images the counting pass
                     that proves TARGET is large enough before it is touched.
  --json             progress and the summary as JSON lines.

Refuses, with TARGET untouched: TARGET smaller than the image, TARGET or one of its partitions
mounted, IMAGE unreadable, unknown format, digest mismatch. Exit codes: docs/exit-codes.md.

Example:
  reimage write debian.img.zst /dev/sdb --sha256 9f86d0...  --bmap debian.bmap --verify`;

function parseSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new ReimageError('REIMAGE_CLI_USAGE', `--image-size takes a whole number of bytes, not "${text}".`);
  }
  return Number(text);
}

async function run(context: VerbContext): Promise<number> {
  const { positionals, values } = parseArgs({
    args: [...context.argv],
    allowPositionals: true,
    options: {
      sha256: { type: 'string' },
      bmap: { type: 'string' },
      verify: { type: 'boolean', default: false },
      'image-size': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [imagePath, targetPath] = positionals;
  if (imagePath === undefined || targetPath === undefined || positionals.length > 2) {
    throw new ReimageError(
      'REIMAGE_CLI_USAGE',
      'Usage: reimage write IMAGE TARGET [--sha256 HEX] [--bmap FILE] [--verify] [--json]',
    );
  }
  const imageSizeBytes = parseSize(values['image-size']);
  const progress = context.progressFor({ json: values.json });
  try {
    const summary = await writeImage({
      imagePath,
      targetPath,
      ...(values.sha256 === undefined ? {} : { sha256: values.sha256 }),
      ...(values.bmap === undefined ? {} : { bmapPath: values.bmap }),
      ...(imageSizeBytes === undefined ? {} : { imageSizeBytes }),
      verify: values.verify,
      log: context.log,
      signal: context.signal,
      onProgress: progress,
    });
    progress.done();
    if (values.json) {
      context.stdout.write(`${JSON.stringify({ written: true, ...summary })}\n`);
    } else {
      const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
      context.stdout.write(
        [
          `${imagePath} (${summary.format}, ${mib(summary.imageSizeBytes)}) written to ${targetPath} in ${(summary.durationMs / 1000).toFixed(1)} s.`,
          `  image digest: ${summary.imageSha256Verified ? 'verified before writing' : 'NOT verified (no --sha256)'}`,
          `  written: ${mib(summary.bytesWritten)}, skipped: ${mib(summary.bytesSkipped)} (zeroed by the kernel: ${mib(summary.bytesZeroed)})`,
          `  read-back: ${summary.readBackVerified ? 'verified' : 'not done (use --verify)'}`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  } catch (e) {
    progress.done();
    throw e;
  }
}

export const writeVerb: Verb = {
  name: 'write',
  summary: 'write a disk image (raw, gz, bz2, xz, zst; optional block map) onto a disk, verified',
  help: HELP,
  run,
};
