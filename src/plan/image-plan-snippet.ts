import { basename } from 'node:path';

/**
 * The plan's `image:` section for an inspected image, in the plan's YAML shape (docs/plan.md):
 * the digest and decoded size filled in, the partition and path left as comments, because only
 * the operator knows where the image will sit on the old disk. Pure, so it is tested as text.
 */
export function imagePlanSnippet(o: { imagePath: string; format: string; sha256: string; sizeBytes: number }): string {
  return [
    'image:',
    '  # partition: 5  # fill in: the partition of the old disk that holds the image',
    `  # path: /${basename(o.imagePath)}  # fill in: where the image is on that partition`,
    `  sha256: ${o.sha256}`,
    `  size: ${o.sizeBytes}  # decoded bytes of the ${o.format} image`,
    '',
  ].join('\n');
}
