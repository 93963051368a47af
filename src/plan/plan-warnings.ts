import type { Plan } from './plan-schema.ts';

/** A digest no real image has: the placeholder an example plan ships with (64 zeros). */
const PLACEHOLDER_SHA256 = /^0{64}$/;

/**
 * What is valid but almost certainly not meant, for `reimage plan validate`. A placeholder
 * digest passes the schema and then refuses every real image at run time (after the image was
 * loaded), so it is said up front.
 */
export function planWarnings(plan: Plan): string[] {
  const warnings: string[] = [];
  if (PLACEHOLDER_SHA256.test(plan.image.sha256)) {
    warnings.push(
      'image.sha256 is all zeros, a placeholder: no image matches it, so the run would refuse to write. Put the SHA-256 of the image file there (sha256sum IMAGE).',
    );
  }
  return warnings;
}
