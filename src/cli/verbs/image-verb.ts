import { inspectImage } from '../../image/index.ts';
import { imagePlanSnippet } from '../../plan/index.ts';
import type { CommandSpec, ParsedArguments } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const inspectSpec: CommandSpec = {
  command: 'image inspect',
  summary: "print an image's format, decoded size and SHA-256, and the plan lines that carry them",
  description: `Prints what reimage needs to know about IMAGE before writing it: its format (from its first
bytes, as "reimage write" finds it), its decoded size in bytes, and the SHA-256 of the file as
given (what a plan's image.sha256 holds), then a ready "image:" section for a plan.

The decoded size comes from the container where it is recorded (xz index, zstd frame
headers) or, for gzip and bzip2, by decoding the image once and counting. Put it in the plan as
image.size and the write need not decode the image an extra time to prove it fits the disk.
A damaged gzip or bzip2 image fails here (exit 3); xz and zstd images whose size is recorded
are only hashed here, so damage inside them shows when they are written. Nothing is changed.`,
  positionals: [{ name: 'IMAGE', help: 'the image file (raw, gz, bz2, xz, zst)', mustExist: 'file' }],
  options: [{ name: 'json', help: 'progress and the result as JSON lines' }],
  examples: ['reimage image inspect debian-12.img.bz2'],
  changesTarget: false,
};

async function inspect(context: VerbContext, args: ParsedArguments): Promise<number> {
  const imagePath = args.required('IMAGE');
  const json = args.flag('json');
  const progress = context.progressFor({ json });
  try {
    const inspection = await inspectImage(imagePath, {
      log: context.log,
      onProgress: progress,
      signal: context.signal,
    });
    progress.done();
    const planSnippet = imagePlanSnippet({
      imagePath,
      format: inspection.format,
      sha256: inspection.sha256,
      sizeBytes: inspection.imageSizeBytes,
    });
    if (json) {
      context.stdout.write(`${JSON.stringify({ ...inspection, planSnippet })}\n`);
      return 0;
    }
    context.stdout.write(
      [
        `${imagePath}:`,
        `  format:       ${inspection.format}`,
        `  decoded size: ${inspection.imageSizeBytes} bytes (${sizeWords(inspection.sizeSource)})`,
        `  file size:    ${inspection.fileSizeBytes} bytes`,
        `  sha256:       ${inspection.sha256}`,
        '',
        'For the plan (docs/plan.md):',
        planSnippet,
      ].join('\n'),
    );
    return 0;
  } catch (e) {
    progress.done();
    throw e;
  }
}

function sizeWords(source: 'file size' | 'container' | 'counting pass'): string {
  if (source === 'file size') return 'a raw image: its file size';
  if (source === 'container') return 'recorded in the container';
  return 'counted by decoding it once';
}

export const imageVerb: Verb = defineVerb({
  name: 'image',
  summary: "print an image's format, decoded size, SHA-256 and plan lines (image inspect IMAGE)",
  commands: [{ spec: inspectSpec, run: inspect }],
});
