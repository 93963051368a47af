import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePlan, planWarnings } from '../../../src/plan/index.ts';
import { runReimage } from '../../helpers/run-cli.ts';

function planWithDigest(sha256: string): string {
  return [
    'version: 1',
    'disk: /dev/sda',
    `image: { partition: 5, path: /rhel7.img.bz2, sha256: ${sha256} }`,
    'retain: { partition: 5, paths: [/etc/machine-id] }',
    'restore: { mounts: [{ partition: 2, at: / }], logs: /log }',
  ].join('\n');
}

describe('planWarnings', () => {
  it('warns about an all-zero placeholder digest', () => {
    const { plan } = parsePlan(planWithDigest('0'.repeat(64)));
    assert.ok(plan !== undefined);
    const warnings = planWarnings(plan);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^image\.sha256 is all zeros, a placeholder/);
  });

  it('says nothing about a real digest, even one with many zeros', () => {
    for (const digest of ['ab'.repeat(32), `${'0'.repeat(63)}1`]) {
      const { plan } = parsePlan(planWithDigest(digest));
      assert.ok(plan !== undefined);
      assert.deepEqual(planWarnings(plan), []);
    }
  });

  it('is shown by reimage plan validate, which still accepts the plan', () => {
    const result = runReimage(['plan', 'validate', 'examples/seed-kiosk.yaml']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /^warning: examples\/seed-kiosk\.yaml: image\.sha256 is all zeros/m);
    const json = JSON.parse(runReimage(['plan', 'validate', '--json', 'examples/seed-kiosk.yaml']).stdout) as {
      warnings: string[];
    };
    assert.equal(json.warnings.length, 1);
  });
});
