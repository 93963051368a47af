import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FuzzTarget } from './fuzz-target.ts';
import { FUZZ_TARGETS } from './fuzz-targets.ts';
import type { FuzzFinding } from './run-fuzz.ts';
import { inputLiteral, minimizeInput, runFuzz } from './run-fuzz.ts';

/**
 * A short, seeded run of every parser of untrusted input (the long one is `npm run fuzz`). Counted
 * in iterations, not time, so a run is the same on every machine: sized to a few seconds in all.
 */
const SEED = 8;
const ITERATIONS: Readonly<Record<string, number>> = {
  'pax-records': 2000,
  'tar-header': 2000,
  'tar-reader': 800,
  'read-bundle': 250,
  'block-map': 800,
  'newc-archive': 1500,
  'initramfs-file': 600,
  plan: 300,
  'refuge-header': 1000,
  'recovery-cmdline': 2000,
};

/**
 * Crashes found and not fixed yet because the file belongs to another change; each has a todo
 * regression test in regressions.test.ts. Remove the entry with the fix.
 */
const KNOWN_UNFIXED: Readonly<Record<string, readonly RegExp[]>> = {};

/** Each finding with its replay command and a minimized input to paste into a regression test. */
async function explain(target: FuzzTarget, findings: readonly FuzzFinding[]): Promise<string> {
  const lines: string[] = [];
  for (const f of findings) {
    const minimized = await minimizeInput(target, f.input, f.signature);
    lines.push(
      `${f.problem}`,
      `  replay: npm run fuzz -- --target ${f.target} --seed ${f.seed} --iterations ${f.iteration + 1}`,
      `  minimized input (latin1): ${inputLiteral(minimized.subarray(0, 600))}`,
    );
  }
  return lines.join('\n');
}

describe('fuzz: parsers of untrusted input keep their contract (short seeded run)', () => {
  for (const [name, make] of Object.entries(FUZZ_TARGETS)) {
    it(`${name}: returns a sound result or a REIMAGE_… error, allocating only what the input justifies`, async () => {
      const target = make();
      try {
        const report = await runFuzz(target, { seed: SEED, iterations: ITERATIONS[name] ?? 200 });
        const known = KNOWN_UNFIXED[name] ?? [];
        const findings = report.findings.filter((f) => !known.some((pattern) => pattern.test(f.problem)));
        if (findings.length > 0) assert.fail(await explain(target, findings));
        // The run must get past the first checks, or it tests nothing: some inputs accepted, many kinds refused.
        const accepted = [...report.outcomes].filter(
          ([signature]) => /^accepted(:|$)/.test(signature) && !/problem/.test(signature),
        );
        assert.ok(accepted.length > 0, 'no mutated input was accepted');
        assert.ok(report.outcomes.size >= 4, `only ${report.outcomes.size} kinds of outcome`);
      } finally {
        await target.close?.();
      }
    });
  }
});
