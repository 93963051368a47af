/**
 * Major and minor numbers of a device from its dev_t, in Linux's encoding (glibc's gnu_dev_major
 * and gnu_dev_minor): 12 bits of major and 8 of minor at the bottom, the rest above bit 32.
 */
export function deviceNumbers(rdev: bigint | number): { major: number; minor: number } {
  const value = BigInt(rdev);
  return {
    // The masks are glibc's 32-bit ones: without them the major's high bits leak into the minor.
    major: Number(((value >> 8n) & 0xfffn) | ((value >> 32n) & 0xfffff000n)),
    minor: Number((value & 0xffn) | ((value >> 12n) & 0xffffff00n)),
  };
}
