import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERBS } from '../../../src/cli/verbs/index.ts';
import { runReimage } from '../../helpers/run-cli.ts';

describe('the reimage command', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reimage-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists every verb with one line in --help', () => {
    const result = runReimage(['--help']);
    assert.equal(result.exitCode, 0);
    for (const verb of VERBS) assert.match(result.stdout, new RegExp(`^  ${verb.name} +\\S`, 'm'));
  });

  it('explains each verb with an example', () => {
    for (const verb of VERBS) {
      const result = runReimage([verb.name, '--help']);
      assert.equal(result.exitCode, 0, verb.name);
      assert.match(result.stdout, /Example/i, `${verb.name} --help has an example`);
    }
  });

  it('prints its version on the pinned Node 24', () => {
    const result = runReimage(['--version']);
    assert.equal(result.exitCode, 0);
    assert.match(result.stdout, /^reimage \d+\.\d+\.\d+ \(node v24\./);
  });

  it('rejects an unknown verb with exit 2', () => {
    const result = runReimage(['frobnicate']);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /unknown verb "frobnicate"/);
  });

  it('rejects an unknown option with exit 2 and points at the help', () => {
    const result = runReimage(['run', '--frobnicate']);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /^reimage run: unknown option --frobnicate\.$/m);
    assert.match(result.stderr, /^Usage: reimage run \[--plan PLAN\] \[--armed\] /m);
    assert.match(result.stderr, /^See "reimage help run"\.$/m);
  });

  it('validates the shipped example plan and explains it', () => {
    const result = runReimage(['plan', 'validate', 'examples/seed-kiosk.yaml']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /valid plan/);
    assert.match(result.stdout, /Image: \/rhel7\.img\.bz2 on partition 5 \(\/dev\/sda5\)/);
    assert.match(result.stdout, /partition 6 \(\/dev\/sda6\) at \/kiosk/);
  });

  it('fails an invalid plan with exit 2, naming each field', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      [
        'version: 1',
        'disk: /dev/sda',
        'image: { partition: 5, path: /i.img, sha256: xyz, colour: blue }',
        'retain: { partition: 5, paths: [] }',
        'restore:',
        '  mounts: [{ partition: 2, at: / }, { partition: 6, at: kiosk }]',
        '  logs: /kiosk/log',
      ].join('\n'),
    );
    const result = runReimage(['plan', 'validate', file]);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /image\.sha256: expected 64 hex digits, got "xyz"/);
    assert.match(result.stderr, /image\.colour: unknown key/);
    assert.match(result.stderr, /restore\.mounts\[1\]\.at: must be an absolute path/);
    assert.match(result.stderr, /REIMAGE_PLAN_INVALID/);
    assert.match(result.stderr, /invalid input; the target is untouched: nothing was changed\. \(exit 2\)$/m);
  });

  it('reports YAML syntax errors with line and column', async () => {
    const file = join(dir, 'syntax.yaml');
    await writeFile(file, 'version: 1\ndisk: [unclosed\n');
    const result = runReimage(['plan', 'validate', file]);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /syntax\.yaml:\d+:\d+: \(yaml syntax\)/);
  });

  it('says clearly when the plan file is missing', () => {
    const result = runReimage(['plan', 'validate', '/nonexistent/plan.yaml']);
    assert.equal(result.exitCode, 2);
    assert.match(
      result.stderr,
      /REIMAGE_CLI_FILE_NOT_FOUND: plan validate: FILE "\/nonexistent\/plan\.yaml" does not exist/,
    );
  });
});
