/**
 * Library code never prints: it reports through a Logger its caller hands in.
 * The CLI logs to stderr; the runner logs to every console and to a file in RAM.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {} };

/** A logger that keeps every line, for tests and for reports. */
export function memoryLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info(message) {
      lines.push(message);
    },
    warn(message) {
      lines.push(`warning: ${message}`);
    },
  };
}
