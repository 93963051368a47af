import { readSync } from 'node:fs';

/**
 * Reads a file by position through one reusable window, so that a bundle of 10,000 small members
 * costs a few dozen read(2) calls instead of three per member. `read` returns a view into the
 * window: use it (hash it, write it) before the next call, which may overwrite it.
 */
export interface WindowReader {
  /** Up to `lengthBytes` at `positionBytes` (fewer only at end of file). */
  read(positionBytes: number, lengthBytes: number): Buffer;
}

export function createWindowReader(fd: number, windowBytes = 1024 * 1024): WindowReader {
  const window = Buffer.allocUnsafe(windowBytes);
  let windowStart = 0;
  let windowLength = 0;
  return {
    read(positionBytes, lengthBytes) {
      const inWindow = positionBytes >= windowStart && positionBytes + lengthBytes <= windowStart + windowLength;
      if (!inWindow) {
        if (lengthBytes > windowBytes) {
          const buffer = Buffer.allocUnsafe(lengthBytes);
          let filled = 0;
          while (filled < lengthBytes) {
            const bytesRead = readSync(fd, buffer, filled, lengthBytes - filled, positionBytes + filled);
            if (bytesRead === 0) break;
            filled += bytesRead;
          }
          return buffer.subarray(0, filled);
        }
        windowStart = positionBytes;
        windowLength = 0;
        while (windowLength < windowBytes) {
          const bytesRead = readSync(fd, window, windowLength, windowBytes - windowLength, windowStart + windowLength);
          if (bytesRead === 0) break;
          windowLength += bytesRead;
        }
      }
      const offset = positionBytes - windowStart;
      return window.subarray(offset, Math.min(offset + lengthBytes, windowLength));
    },
  };
}
