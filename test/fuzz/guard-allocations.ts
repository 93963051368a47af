/**
 * Watches Buffer allocations while a parser runs: a header that claims 2^60 bytes must be refused,
 * not allocated, and an allocation far beyond the input's size is a finding even if it succeeds.
 * Only Buffer's factories are watched: they are what our parsers allocate with.
 */
export class AllocationLimitError extends Error {
  readonly requestedBytes: number;

  constructor(requestedBytes: number, limitBytes: number) {
    super(`allocation of ${requestedBytes} bytes exceeds the fuzz limit of ${limitBytes} bytes`);
    this.name = 'AllocationLimitError';
    this.requestedBytes = requestedBytes;
  }
}

export interface AllocationReport {
  /** The largest single request seen (0 when there was none). */
  readonly largestBytes: number;
}

export async function guardAllocations<T>(
  limitBytes: number,
  run: () => Promise<T>,
): Promise<{ result: PromiseSettledResult<T>; allocations: AllocationReport }> {
  const { alloc, allocUnsafe, allocUnsafeSlow } = Buffer;
  let largestBytes = 0;
  const check = (size: number): void => {
    if (size > largestBytes) largestBytes = size;
    // Thrown before the real allocation, so a 2^60-byte claim costs nothing to find.
    if (size > limitBytes) throw new AllocationLimitError(size, limitBytes);
  };
  Buffer.alloc = (size, fill, encoding) => {
    check(size);
    return alloc(size, fill, encoding);
  };
  Buffer.allocUnsafe = (size) => {
    check(size);
    return allocUnsafe(size);
  };
  Buffer.allocUnsafeSlow = (size) => {
    check(size);
    return allocUnsafeSlow(size);
  };
  try {
    const value = await run();
    return { result: { status: 'fulfilled', value }, allocations: { largestBytes } };
  } catch (reason) {
    return { result: { status: 'rejected', reason }, allocations: { largestBytes } };
  } finally {
    Buffer.alloc = alloc;
    Buffer.allocUnsafe = allocUnsafe;
    Buffer.allocUnsafeSlow = allocUnsafeSlow;
  }
}
