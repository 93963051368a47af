import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REIMAGE_BIN, REPO_ROOT, runReimage } from '../../helpers/run-cli.ts';

/** A stack frame line, as Node prints them: a user-caused error must never show one. */
const STACK_FRAME = /^\s+at /m;
const MISSING = '/nonexistent/reimage-test/missing';

describe('honest exits of the reimage command', () => {
  // Made before the cases are declared, since their argument lists name paths inside it.
  const dir = mkdtempSync(join(tmpdir(), 'reimage-exits-'));
  const file = join(dir, 'some-file');
  const plan = join(REPO_ROOT, 'examples/seed-kiosk.yaml');
  before(async () => {
    await writeFile(file, 'x');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // One case per file a verb reads: a path the operator gave that is not there is invalid input.
  const missingFileCases: [string, string[], string][] = [
    ['plan validate FILE', ['plan', 'validate', MISSING], 'FILE'],
    ['initramfs list FILE', ['initramfs', 'list', MISSING], 'FILE'],
    ['initramfs build --plan', ['initramfs', 'build', '--plan', MISSING, '--out', join(dir, 'i.img')], '--plan'],
    [
      'initramfs build --modules',
      ['initramfs', 'build', '--plan', plan, '--modules', MISSING, '--out', join(dir, 'i.img')],
      '--modules',
    ],
    [
      'retain capture --root',
      ['retain', 'capture', '--root', MISSING, '--list', file, '--out', join(dir, 'b.tar')],
      '--root',
    ],
    ['retain restore --bundle', ['retain', 'restore', '--root', dir, '--bundle', MISSING], '--bundle'],
    ['retain verify --bundle', ['retain', 'verify', '--root', dir, '--bundle', MISSING], '--bundle'],
    ['retain inspect --bundle', ['retain', 'inspect', '--bundle', MISSING], '--bundle'],
    ['write IMAGE', ['write', MISSING, file], 'IMAGE'],
    ['write TARGET', ['write', file, MISSING], 'TARGET'],
    ['write --bmap', ['write', file, file, '--bmap', MISSING], '--bmap'],
    ['run --plan', ['run', '--plan', MISSING], '--plan'],
  ];
  it('retain capture --list: a missing list is invalid input (exit 2), named, untouched, no stack', () => {
    const result = runReimage(['retain', 'capture', '--root', dir, '--list', MISSING, '--out', join(dir, 'b.tar')]);
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`REIMAGE_RETAIN_LIST_UNREADABLE: Cannot read the retention list ${MISSING}`),
    );
    assert.match(result.stderr, /the target is untouched: nothing was changed\. \(exit 2\)\n$/);
    assert.doesNotMatch(result.stderr, STACK_FRAME);
  });

  for (const [name, argv, shown] of missingFileCases) {
    it(`${name}: a missing file is invalid input (exit 2), named, untouched, no stack`, () => {
      const result = runReimage(argv);
      assert.equal(result.exitCode, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`REIMAGE_CLI_FILE_NOT_FOUND: .*${shown} "${MISSING}" does not exist`));
      assert.match(result.stderr, /the target is untouched: nothing was changed\. \(exit 2\)\n$/);
      assert.doesNotMatch(result.stderr, STACK_FRAME);
    });
  }

  const usageCases: [string[], string, string][] = [
    [['write', '/x'], 'write: TARGET is missing', 'reimage write IMAGE TARGET'],
    [['write', '/x', '/y', '--sha256'], 'write: --sha256 needs a value (HEX)', 'reimage write IMAGE TARGET'],
    [['run'], 'run: --plan PLAN is missing', 'reimage run [--plan PLAN] [--armed]'],
    [['plan', 'validate'], 'plan validate: FILE is missing', 'reimage plan validate FILE'],
    [['retain', 'inspect', '--frob'], 'retain inspect: unknown option --frob', 'reimage retain inspect --bundle'],
    [
      ['retain', 'verify', '--root', '/', '--bundle', '/', '--owners', 'x'],
      'retain verify: --owners must be by-name or by-id, not "x"',
      'reimage retain verify --root',
    ],
    [['initramfs', 'list'], 'initramfs list: FILE is missing', 'reimage initramfs list FILE'],
    [['demo', 'extra'], 'demo: unexpected argument "extra"', 'reimage demo [--vm]'],
    [
      ['write', '/x', '/y', '--image-size', '12k'],
      'write: --image-size takes a whole number of bytes, not "12k"',
      'reimage write',
    ],
  ];
  for (const [argv, message, usage] of usageCases) {
    it(`${argv.join(' ')}: "${message}" with that command's usage only`, () => {
      const result = runReimage(argv);
      assert.equal(result.exitCode, 2, result.stderr);
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines[0], `reimage ${message}.`);
      assert.ok(lines[1]?.startsWith(`Usage: ${usage}`), lines[1]);
      const command = message.slice(0, message.indexOf(':'));
      assert.equal(lines[2], `See "reimage help ${command}".`);
      assert.match(lines[3] ?? '', /the target is untouched/);
      assert.equal(lines.length, 4, result.stderr);
    });
  }

  it('answers reimage help VERB and reimage help VERB SUB-VERB', () => {
    const retain = runReimage(['help', 'retain']);
    assert.equal(retain.exitCode, 0);
    for (const sub of ['capture', 'restore', 'verify', 'inspect']) {
      assert.match(retain.stdout, new RegExp(`^Usage: reimage retain ${sub} `, 'm'));
    }
    const capture = runReimage(['help', 'retain', 'capture']);
    assert.equal(capture.exitCode, 0);
    assert.match(capture.stdout, /^Usage: reimage retain capture --root DIR --list FILE --out BUNDLE/);
    assert.doesNotMatch(capture.stdout, /reimage retain restore/);
    assert.equal(runReimage(['retain', 'capture', '--help']).stdout, capture.stdout);
    assert.equal(runReimage(['help', 'write']).stdout, runReimage(['write', '--help']).stdout);
    assert.equal(runReimage(['help', 'retain', 'frob']).exitCode, 2);
  });

  const wrongKindCases: [string[], string][] = [
    [['initramfs', 'list', '/'], 'initramfs list: FILE "/" is a directory, not a file'],
    [['plan', 'validate', '/'], 'plan validate: FILE "/" is a directory, not a file'],
    [['retain', 'inspect', '--bundle', '/'], 'retain inspect: --bundle "/" is a directory, not a file'],
    [
      ['retain', 'verify', '--root', '/etc/hostname', '--bundle', '/etc/hostname'],
      'retain verify: --root "/etc/hostname" is not a directory',
    ],
  ];
  for (const [argv, message] of wrongKindCases) {
    it(`${argv.join(' ')}: a directory for a file (or the reverse) is invalid input, no stack`, () => {
      const result = runReimage(argv);
      assert.equal(result.exitCode, 2, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`REIMAGE_CLI_FILE_NOT_FOUND: ${message.replaceAll('"', '"')}\\. Check the path\\.`),
      );
      assert.doesNotMatch(result.stderr, STACK_FRAME);
    });
  }

  it('gives a damaged initramfs to initramfs list as a refusal, not a stack trace', async () => {
    const bad = join(dir, 'bad.img');
    await writeFile(bad, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]));
    const result = runReimage(['initramfs', 'list', bad]);
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /REIMAGE_INITRAMFS_ARCHIVE_CORRUPT/);
    assert.doesNotMatch(result.stderr, STACK_FRAME);
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`on ${signal}: one line saying what was interrupted, the target's state, no stack, exit 130`, async () => {
      // A sparse image whose digest check takes seconds; the signal goes after the first
      // progress line, so the check is running (no assumption about how long it takes).
      const image = join(dir, `${signal}.img`);
      const target = join(dir, `${signal}.target`);
      await writeFile(image, '');
      await truncate(image, 8 * 1024 ** 3);
      await writeFile(target, Buffer.alloc(1024 * 1024, 0xa5));
      const child = spawn(REIMAGE_BIN, ['write', image, target, '--sha256', 'f'.repeat(64)], { cwd: REPO_ROOT });
      let stderr = '';
      let signalled = false;
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (text: string) => {
        stderr += text;
        if (!signalled && /verify image/.test(stderr)) {
          signalled = true;
          child.kill(signal);
        }
      });
      const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(exitCode, 130, stderr);
      // The writer's abort error says where it was and that the target was not touched.
      assert.match(
        stderr,
        new RegExp(
          `^reimage write: interrupted by ${signal}\\. The write was interrupted while checking the image digest; the target was not touched\\.$`,
          'm',
        ),
      );
      // The digest is checked before the first byte of the target changes: the error knows.
      assert.match(stderr, /^reimage: interrupted; the target is untouched[^\n]*\(exit 130\)\n$/m);
      assert.doesNotMatch(stderr, STACK_FRAME);
      const handle = await open(target);
      const bytes = Buffer.alloc(1024 * 1024);
      await handle.read(bytes, 0, bytes.length, 0);
      await handle.close();
      assert.ok(bytes.equals(Buffer.alloc(1024 * 1024, 0xa5)), 'the target is as it was');
    });
  }
});
