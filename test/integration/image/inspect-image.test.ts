import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Progress } from '../../../src/core/progress.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { type ImageFormat, inspectImage } from '../../../src/image/index.ts';
import { parsePlan } from '../../../src/plan/index.ts';
import { runReimage } from '../../helpers/run-cli.ts';
import { removeDir, requireTools } from './image-fixture.ts';

/** Runs a shell line; the oracles below are the system tools, never our own code. */
function sh(line: string, ...args: string[]): string {
  return execFileSync('sh', ['-c', line, 'sh', ...args], { encoding: 'utf8' }).trim();
}

/** The independent answers: sha256sum of the file, `wc -c` of what the format's own tool decodes. */
function oracle(path: string, decode: string): { sha256: string; sizeBytes: number } {
  const sha256 = sh('sha256sum "$1" | cut -d" " -f1', path);
  const sizeBytes = Number(sh(`${decode} < "$1" | wc -c`, path));
  return { sha256, sizeBytes };
}

interface Case {
  readonly name: string;
  readonly file: string;
  readonly format: ImageFormat;
  readonly decode: string;
  readonly sizeSource: 'file size' | 'container' | 'counting pass';
}

describe('reimage image inspect', () => {
  let dir = '';
  const cases: Case[] = [];
  before(() => {
    requireTools();
    dir = mkdtempSync(join(tmpdir(), 'reimage-inspect-'));
    const raw = join(dir, 'disk.img');
    // 3 MiB + 1536 bytes: whole sectors, not whole MiB; random and zero runs, like a disk.
    sh(
      '(head -c 1M /dev/urandom; head -c 2M /dev/zero; head -c 1536 /dev/urandom) > "$1" && ' +
        'gzip -k -n "$1" && bzip2 -k "$1" && xz -k "$1" && zstd -q -k "$1" && ' +
        // From a pipe zstd cannot record the size: the frame header omits it.
        'zstd -q -c < "$1" > "$1.stream.zst" && ' +
        // Two gzip members: the trailer's ISIZE is only the last member's, so only decoding can tell.
        '(head -c 512 /dev/urandom | gzip -n; gzip -n -c < "$1") > "$1.two.gz"',
      raw,
    );
    cases.push(
      { name: 'raw', file: raw, format: 'raw', decode: 'cat', sizeSource: 'file size' },
      { name: 'gzip', file: `${raw}.gz`, format: 'gzip', decode: 'gzip -dc', sizeSource: 'counting pass' },
      {
        name: 'gzip, two members',
        file: `${raw}.two.gz`,
        format: 'gzip',
        decode: 'gzip -dc',
        sizeSource: 'counting pass',
      },
      { name: 'bzip2', file: `${raw}.bz2`, format: 'bzip2', decode: 'bzip2 -dc', sizeSource: 'counting pass' },
      { name: 'xz', file: `${raw}.xz`, format: 'xz', decode: 'xz -dc', sizeSource: 'container' },
      { name: 'zstd', file: `${raw}.zst`, format: 'zstd', decode: 'zstd -dc', sizeSource: 'container' },
      {
        name: 'zstd without a recorded size',
        file: `${raw}.stream.zst`,
        format: 'zstd',
        decode: 'zstd -dc',
        sizeSource: 'counting pass',
      },
    );
  });
  after(() => {
    if (dir !== '') removeDir(dir);
  });

  it('finds the format, decoded size and digest the system tools find, for every format', async () => {
    assert.equal(cases.length, 7);
    for (const c of cases) {
      const expected = oracle(c.file, c.decode);
      const progress: Progress[] = [];
      const found = await inspectImage(c.file, { onProgress: (p) => progress.push(p) });
      assert.equal(found.format, c.format, c.name);
      assert.equal(found.imageSizeBytes, expected.sizeBytes, c.name);
      assert.equal(found.sha256, expected.sha256, c.name);
      assert.equal(found.sizeSource, c.sizeSource, c.name);
      assert.equal(found.fileSizeBytes, readFileSync(c.file).length, c.name);
      if (c.sizeSource === 'counting pass') {
        // The count is reported as it goes, and its last report is the whole size.
        const measured = progress.filter((p) => p.phase === 'measure image');
        assert.equal(measured.at(-1)?.done, expected.sizeBytes, c.name);
      }
    }
  });

  it('prints them and a plan snippet that, filled in, is a valid plan carrying them (--json and text)', () => {
    const bzip2 = cases.find((c) => c.name === 'bzip2');
    assert.ok(bzip2 !== undefined);
    const expected = oracle(bzip2.file, bzip2.decode);
    const json = runReimage(['image', 'inspect', bzip2.file, '--json']);
    assert.equal(json.exitCode, 0, json.stderr);
    const last = json.stdout.trim().split('\n').at(-1) ?? '';
    const result = JSON.parse(last) as { format: string; imageSizeBytes: number; sha256: string; planSnippet: string };
    assert.equal(result.format, 'bzip2');
    assert.equal(result.imageSizeBytes, expected.sizeBytes);
    assert.equal(result.sha256, expected.sha256);

    const text = runReimage(['image', 'inspect', bzip2.file]);
    assert.equal(text.exitCode, 0, text.stderr);
    assert.match(text.stdout, /^ {2}format: +bzip2$/m);
    assert.match(text.stdout, new RegExp(`^  decoded size: +${expected.sizeBytes} bytes \\(counted`, 'm'));
    assert.match(text.stdout, new RegExp(`^  sha256: +${expected.sha256}$`, 'm'));
    const snippet = text.stdout.slice(text.stdout.indexOf('image:\n'));
    assert.equal(snippet, result.planSnippet);
    // The operator fills in the commented lines; the rest goes into the plan as printed.
    const filled = snippet.replace('# partition: 5  #', 'partition: 5  #').replace('# path: ', 'path: ');
    const planText = [
      'version: 1',
      'disk: /dev/sda',
      filled,
      'retain: { partition: 5, paths: [/etc/machine-id] }',
      'restore: { mounts: [{ partition: 2, at: / }], logs: /log }',
    ].join('\n');
    const { plan, problems } = parsePlan(planText);
    assert.deepEqual(problems, []);
    assert.equal(plan?.image.size, expected.sizeBytes);
    assert.equal(plan?.image.sha256, expected.sha256);
    assert.equal(plan?.image.path, '/disk.img.bz2');
  });

  it('refuses a damaged image with REIMAGE_IMAGE_CORRUPT (exit 3), and a missing one with exit 2', async () => {
    const bzip2 = cases.find((c) => c.name === 'bzip2');
    assert.ok(bzip2 !== undefined);
    const truncated = join(dir, 'truncated.img.bz2');
    const whole = readFileSync(bzip2.file);
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    await assert.rejects(
      inspectImage(truncated),
      (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_IMAGE_CORRUPT',
    );
    const cli = runReimage(['image', 'inspect', truncated]);
    assert.equal(cli.exitCode, 3, cli.stderr);
    assert.match(cli.stderr, /REIMAGE_IMAGE_CORRUPT/);

    const missing = runReimage(['image', 'inspect', join(dir, 'no-such.img.gz')]);
    assert.equal(missing.exitCode, 2, missing.stderr);
    assert.match(
      missing.stderr,
      /REIMAGE_CLI_FILE_NOT_FOUND: image inspect: IMAGE ".*no-such\.img\.gz" does not exist/,
    );
  });
});
