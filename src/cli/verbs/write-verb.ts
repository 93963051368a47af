import { writeImage } from '../../image/index.ts';
import type { CommandSpec, ParsedArguments } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const spec: CommandSpec = {
  command: 'write',
  summary: 'write a disk image (raw, gz, bz2, xz, zst; optional block map) onto a disk, verified',
  description: `Writes a disk image onto TARGET (a block device, or an existing disk image file that is never
grown or truncated; bytes past the image's end stay as they were).

IMAGE may be raw, gzip, bzip2, xz or zstd; the format is found from its first bytes, not its name.
Without --sha256 the image is written unverified, and reimage says so.

Refuses, with TARGET untouched: TARGET smaller than the image, TARGET or one of its partitions
mounted, IMAGE unreadable, unknown format, digest mismatch. Exit codes: docs/exit-codes.md.

The first sector (boot code and partition table) is written last, in one write, after everything
else is on the disk and flushed: a write that stops half-way (Ctrl-C, a crash, a power cut)
leaves the old first sector in place. A damaged xz or zstd stream that records its size is only
found while writing (exit 4, first sector still old); --sha256 refuses it before any change.`,
  positionals: [
    { name: 'IMAGE', help: 'the image file', mustExist: 'file' },
    { name: 'TARGET', help: 'the disk (block device) or disk image file to write onto', mustExist: 'file' },
  ],
  options: [
    {
      name: 'sha256',
      value: 'HEX',
      help: 'the SHA-256 of IMAGE as given (compressed bytes). The whole file is checked\nbefore the first byte of TARGET changes; a mismatch leaves TARGET untouched.',
    },
    {
      name: 'bmap',
      value: 'FILE',
      help: 'a block map from "bmaptool create": only mapped ranges are written, and each\nrange\'s checksum from the map is checked as it is written.',
      mustExist: 'file',
    },
    { name: 'verify', help: 'read back what was written (the mapped ranges with --bmap) and compare' },
    {
      name: 'image-size',
      value: 'BYTES',
      help: 'the decoded size, if known: spares bzip2 and gzip images the counting pass\nthat proves TARGET is large enough before it is touched',
      check: (text) =>
        /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? undefined : 'takes a whole number of bytes',
    },
    { name: 'json', help: 'progress and the summary as JSON lines' },
  ],
  examples: ['reimage write debian.img.zst /dev/sdb --sha256 9f86d0...  --bmap debian.bmap --verify'],
  changesTarget: true,
};

async function run(context: VerbContext, args: ParsedArguments): Promise<number> {
  const imagePath = args.required('IMAGE');
  const targetPath = args.required('TARGET');
  const values = {
    sha256: args.value('sha256'),
    bmap: args.value('bmap'),
    verify: args.flag('verify'),
    json: args.flag('json'),
  };
  const sizeText = args.value('image-size');
  const imageSizeBytes = sizeText === undefined ? undefined : Number(sizeText);
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

export const writeVerb: Verb = defineVerb({ name: 'write', summary: spec.summary, commands: [{ spec, run }] });
