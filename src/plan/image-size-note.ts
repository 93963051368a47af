import type { Plan } from './plan-schema.ts';

/** Formats whose files do not record the decoded size, by the name's ending (see imageSizeNote). */
const SIZELESS_ENDINGS: ReadonlyArray<{ ending: RegExp; format: string }> = [
  { ending: /\.bz2$/i, format: 'bzip2' },
  { ending: /\.gz$/i, format: 'gzip' },
];

/**
 * What the write will do to learn the image's decoded size, in plain words, for `plan validate`.
 * The image sits on the old disk, so validate cannot read it: the format is judged by the name
 * here (the writer goes by the magic bytes). A .bz2 or .gz image with neither image.size nor
 * image.bmap costs a whole extra decode before the disk is touched, so that is said, with the fix.
 */
export function imageSizeNote(plan: Plan): string {
  const { size, bmap, path } = plan.image;
  if (size !== undefined) {
    return `Image size: ${size} bytes decoded (image.size): checked against the disk before anything changes; the write fails if the image decodes to any other size.`;
  }
  if (bmap !== undefined) return 'Image size: from the block map.';
  const sizeless = SIZELESS_ENDINGS.find(({ ending }) => ending.test(path));
  if (sizeless !== undefined) {
    return [
      `Image size: not in the plan, and a ${sizeless.format} image (${path}) does not record it, so the write will have`,
      'to decode the image once more before writing, only to prove it fits the disk. To avoid that extra',
      `decode, run "reimage image inspect ${path.split('/').at(-1) ?? path}" where the image is and put the size it prints into the plan as image.size.`,
    ].join('\n');
  }
  return 'Image size: not in the plan; read before writing from the container (xz, zstd) or the file (raw). A gzip or bzip2 image would be decoded once more to measure it: give image.size (reimage image inspect IMAGE).';
}
