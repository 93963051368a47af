// The armed write SIGKILLed mid-way, then resumed from the last figure it reported durable, ends
// byte for byte like an uncut write: LBA 0 old, the map's bytes the image's, the rest old.
// (SIGKILL keeps what the kernel already took; a power cut also loses what no flush covered,
// which these tests cannot show: that is the job of the power-cut trials of issue 9.)
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ByteRange } from '../../../src/disk/index.ts';
import {
  attachLoop,
  detachLoop,
  dirtyFile,
  MIB,
  readRange,
  redirty,
  removeDir,
  requireTools,
  run,
} from './image-fixture.ts';
import { expectedTarget, firstDifference } from './mapped-image-fixture.ts';

const NODE = join(import.meta.dirname, '..', '..', '..', 'node_modules', '.bin', 'node');
const CHILD = join(import.meta.dirname, 'write-mapped-child.ts');
/** Incompressible, so the write takes long enough to be stopped at chosen points. */
const IMAGE_BYTES = 256 * MIB;
const TARGET_BYTES = IMAGE_BYTES + 16 * MIB;
const CHECKPOINT_BYTES = 8 * MIB;
const SECTOR_BYTES = 512;

/** 6 MiB of every 8, a few odd sectors in the gaps, LBA 0's range first. */
function killMap(): ByteRange[] {
  const ranges: ByteRange[] = [{ offsetBytes: 0, lengthBytes: MIB }];
  for (let at = 2 * MIB; at + 8 * MIB <= IMAGE_BYTES; at += 8 * MIB) {
    ranges.push({ offsetBytes: at, lengthBytes: 6 * MIB });
    ranges.push({ offsetBytes: at + 7 * MIB + 1536, lengthBytes: 5 * 512 });
  }
  return ranges;
}

interface KilledRun {
  readonly lastDurable: number;
  readonly killed: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the child writer and SIGKILLs it once it has reported `killAfter` figures. */
async function runAndKill(args: readonly string[], killAfter: number): Promise<KilledRun> {
  const child = spawn(NODE, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let lastDurable = -1;
  let figures = 0;
  let killed = false;
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr += text;
  });
  child.stdout.on('data', (text: string) => {
    stdout += text;
    for (const match of text.matchAll(/durable (\d+)/g)) {
      lastDurable = Number(match[1]);
      figures++;
    }
    if (figures >= killAfter && !killed && child.exitCode === null) killed = child.kill('SIGKILL');
  });
  await new Promise<void>((resolvePromise) => child.on('exit', () => resolvePromise()));
  return { lastDurable, killed, stdout, stderr };
}

describe('the armed write killed mid-way resumes to the same result', () => {
  let dir: string;
  let image: string;
  let imageBytes: Buffer;
  let mapPath: string;
  let backing: string;
  let device: string | undefined;
  let expected: Buffer;
  const ranges = killMap();
  const totalBytes = ranges.reduce((sum, range) => sum + range.lengthBytes, 0);

  before(() => {
    requireTools();
    dir = mkdtempSync(join(tmpdir(), 'reimage-mapped-kill-'));
    const raw = join(dir, 'random.img');
    run('sh', ['-c', 'head -c "$1" /dev/urandom > "$0"', raw, String(IMAGE_BYTES)]);
    image = `${raw}.zst`;
    run('zstd', ['-q', '-1', '-f', raw, '-o', image]);
    imageBytes = readRange(raw, 0, IMAGE_BYTES);
    mapPath = join(dir, 'map.json');
    writeFileSync(mapPath, JSON.stringify(ranges));
    backing = dirtyFile(dir, 'target.img', TARGET_BYTES);
    device = attachLoop(backing);
    expected = expectedTarget(imageBytes, ranges, TARGET_BYTES, SECTOR_BYTES);
  });

  after(() => {
    if (device !== undefined) detachLoop(device);
    if (dir !== undefined) removeDir(dir);
  });

  // After the first checkpoint, a third of the way, and near the end.
  for (const killAfter of [1, 8, 18]) {
    it(`SIGKILL after ${killAfter} durable figure(s), then resume from the last one`, async () => {
      assert.ok(device !== undefined);
      redirty(device, TARGET_BYTES);
      const cut = await runAndKill([image, device, mapPath, '0', String(CHECKPOINT_BYTES)], killAfter);
      assert.ok(cut.killed, `the write ended before it could be killed: ${cut.stdout} ${cut.stderr}`);
      assert.ok(cut.lastDurable > 0 && cut.lastDurable < totalBytes, `last durable figure ${cut.lastDurable}`);
      spawnSync('blockdev', ['--flushbufs', device]);
      assert.ok(
        readRange(backing, 0, SECTOR_BYTES).every((b) => b === 0xa5),
        'LBA 0 is the old one',
      );

      const resumed = spawnSync(
        NODE,
        [CHILD, image, device, mapPath, String(cut.lastDurable), String(CHECKPOINT_BYTES)],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(resumed.status, 0, resumed.stderr);
      const figures = [...resumed.stdout.matchAll(/durable (\d+)/g)].map((m) => Number(m[1]));
      assert.ok((figures[0] ?? 0) > cut.lastDurable, 'the resumed run goes on from the figure');
      assert.equal(figures.at(-1), totalBytes);
      spawnSync('blockdev', ['--flushbufs', device]);
      const got = readRange(backing, 0, TARGET_BYTES);
      const at = firstDifference(got, expected);
      assert.equal(at, -1, `the target differs from an uncut write at byte ${at}`);
    });
  }
});
