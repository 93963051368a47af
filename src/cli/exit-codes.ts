/** Moved to src/core/exit-codes.ts (no library part imports cli/); kept for old import paths. */
export { ExitCode, type ExitCodeValue, exitCodeFor } from '../core/exit-codes.ts';
