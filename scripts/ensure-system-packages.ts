// Run before the tests (npm's pretest): installs the Debian packages the suite needs when run
// as root on Debian, or fails naming them. Tests never skip for a missing tool.
import { ensureSystemPackages } from '../src/core/system-tools.ts';

await ensureSystemPackages({
  info: (message) => process.stderr.write(`setup: ${message}\n`),
  warn: (message) => process.stderr.write(`setup: warning: ${message}\n`),
});
