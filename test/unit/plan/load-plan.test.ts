import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { describePlan, formatFieldPath, parsePlan, partitionDevicePath } from '../../../src/plan/index.ts';

const VALID = `version: 1
disk: /dev/sda
image:
  partition: 5
  path: /rhel7.img.bz2
  sha256: ${'ab'.repeat(32)}
retain:
  partition: 5
  paths:
    - /etc/machine-id
    - /etc/ssh/ssh_host_*
    - { path: /etc/pki/tls/private, optional: true }
restore:
  mounts:
    - { partition: 2, at: / }
    - { partition: 6, at: /kiosk }
  logs: /kiosk/log
finish: reboot
`;

function problemsOf(text: string): string[] {
  const result = parsePlan(text);
  assert.equal(result.plan, undefined, 'expected the plan to be invalid');
  return result.problems.map((problem) => `${problem.field}: ${problem.message}`);
}

describe('parsePlan', () => {
  it('accepts a valid plan and fills defaults', () => {
    const { plan } = parsePlan(VALID);
    assert.ok(plan);
    assert.equal(plan.retain.owners, 'by-name');
    assert.deepEqual(plan.restore.after, []);
    assert.deepEqual(plan.retain.paths[2], { path: '/etc/pki/tls/private', optional: true });
  });

  it('keeps the shipped example (the original seed-kiosk setup) valid and faithful', async () => {
    const text = await readFile(new URL('../../../examples/seed-kiosk.yaml', import.meta.url), 'utf8');
    const { plan, problems } = parsePlan(text);
    assert.deepEqual(problems, []);
    assert.ok(plan);
    assert.equal(plan.image.partition, 5);
    assert.equal(plan.image.path, '/rhel7.img.bz2');
    assert.equal(plan.retain.partition, 5);
    assert.deepEqual(plan.restore.mounts, [
      { partition: 2, at: '/' },
      { partition: 6, at: '/kiosk' },
    ]);
    assert.equal(plan.restore.logs, '/kiosk/log');
  });

  const cases: { name: string; edit: (text: string) => string; expected: string }[] = [
    {
      name: 'a short digest',
      edit: (t) => t.replace(/sha256: .*/, 'sha256: xyz'),
      expected: 'image.sha256: expected 64 hex digits, got "xyz"',
    },
    {
      name: 'a relative mount point',
      edit: (t) => t.replace('at: /kiosk', 'at: kiosk'),
      expected: 'restore.mounts[1].at: must be an absolute path',
    },
    {
      name: 'a mount point that climbs out of the new root',
      edit: (t) => t.replace('at: /kiosk', 'at: /../../tmp/x'),
      expected: 'restore.mounts[1].at: must not contain "." or ".." components',
    },
    {
      name: 'a logs directory that climbs out of the new root',
      edit: (t) => t.replace('logs: /kiosk/log', 'logs: /kiosk/../../etc/cron.d'),
      expected: 'restore.logs: must not contain',
    },
    {
      name: 'a retained path with ..',
      edit: (t) => t.replace('- /etc/machine-id', '- /etc/../x'),
      expected: 'retain.paths[0]',
    },
    {
      name: 'an unknown key',
      edit: (t) => t.replace('  path: /rhel7.img.bz2', '  path: /rhel7.img.bz2\n  colour: blue'),
      expected: 'image.colour: unknown key (check its spelling against the plan reference in docs/plan.md)',
    },
    {
      name: 'a missing field',
      edit: (t) => t.replace('disk: /dev/sda\n', ''),
      expected: 'disk: is required (expected string)',
    },
    { name: 'a wrong version', edit: (t) => t.replace('version: 1', 'version: 2'), expected: 'version: expected 1' },
    {
      name: 'a bad finish',
      edit: (t) => t.replace('finish: reboot', 'finish: explode'),
      expected: 'finish: expected reboot or poweroff',
    },
    {
      name: 'a partition given as a word',
      edit: (t) => t.replace('  partition: 5\n  path', '  partition: five\n  path'),
      expected: 'image.partition: expected a partition number',
    },
    {
      name: 'a first mount that is not the root',
      edit: (t) => t.replace('- { partition: 2, at: / }', '- { partition: 2, at: /data }'),
      expected: 'restore.mounts: the first mount must be the new root (at: /)',
    },
  ];
  for (const { name, edit, expected } of cases) {
    it(`names the field for ${name}`, () => {
      const problems = problemsOf(edit(VALID));
      assert.ok(
        problems.some((problem) => problem.startsWith(expected)),
        `expected a problem starting "${expected}", got ${JSON.stringify(problems)}`,
      );
    });
  }

  it('takes an all-digit digest as written, not as a number', () => {
    const digits = `0${'1234567890'.repeat(6)}123`;
    const { plan } = parsePlan(VALID.replace(/sha256: .*/, `sha256: ${digits}`));
    assert.equal(plan?.image.sha256, digits);
  });

  it('reports YAML syntax errors with line and column', () => {
    const result = parsePlan('version: 1\ndisk: [unclosed\n');
    const first = result.problems[0];
    assert.ok(first);
    assert.equal(first.field, '(yaml syntax)');
    assert.equal(typeof first.line, 'number');
    assert.equal(typeof first.column, 'number');
  });

  it('points a field problem at its line', () => {
    const result = parsePlan(VALID.replace(/sha256: .*/, 'sha256: xyz'));
    assert.equal(result.problems[0]?.line, 6);
  });
});

describe('partitionDevicePath', () => {
  const table: [string, number, string][] = [
    ['/dev/sda', 5, '/dev/sda5'],
    ['/dev/vda', 2, '/dev/vda2'],
    ['/dev/xvda', 6, '/dev/xvda6'],
    ['/dev/nvme0n1', 5, '/dev/nvme0n1p5'],
    ['/dev/mmcblk0', 5, '/dev/mmcblk0p5'],
    ['/dev/loop7', 2, '/dev/loop7p2'],
  ];
  for (const [disk, number, expected] of table) {
    it(`${disk} + ${number} = ${expected}`, () => assert.equal(partitionDevicePath(disk, number), expected));
  }
});

describe('formatFieldPath and describePlan', () => {
  it('formats nested paths', () => {
    assert.equal(formatFieldPath(['restore', 'mounts', 1, 'at']), 'restore.mounts[1].at');
    assert.equal(formatFieldPath([]), '(top level)');
  });
  it('describes the plan in plain words', () => {
    const { plan } = parsePlan(VALID);
    assert.ok(plan);
    const text = describePlan(plan).join('\n');
    assert.match(text, /Disk: \/dev\/sda will be overwritten/);
    assert.match(text, /Retain: 3 path\(s\) \(1 optional\)/);
    assert.match(text, /partition 6 \(\/dev\/sda6\) at \/kiosk/);
  });
});

describe('examples/kiosk.retain', () => {
  it('parses as a retention list', async () => {
    const { parseRetainList } = await import('../../../src/retain/index.ts');
    const file = new URL('../../../examples/kiosk.retain', import.meta.url);
    const requests = parseRetainList(await readFile(file, 'utf8'), 'examples/kiosk.retain');
    assert.equal(requests.length, 7);
    assert.deepEqual(requests[0], { pattern: '/etc/machine-id', optional: false });
    assert.equal(requests[3]?.optional, true);
  });
});
