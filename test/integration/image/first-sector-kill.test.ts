// `reimage write` killed with SIGKILL at several points of a large write leaves the target's LBA 0
// byte for byte as it was (docs/adr/0205); a complete write then leaves the image's LBA 0.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  attachLoop,
  detachLoop,
  MIB,
  readRange,
  removeDir,
  requireTools,
  run,
  sha256,
  writeAtPath,
} from './image-fixture.ts';

const REIMAGE = join(import.meta.dirname, '..', '..', '..', 'bin', 'reimage');
/** Incompressible, so the write takes long enough to be stopped at chosen points. */
const IMAGE_BYTES = 384 * MIB;
const TARGET_BYTES = IMAGE_BYTES + 16 * MIB;
const SECTOR_BYTES = 512;
const PROBE_BYTES = 4096;

function readProbe(fd: number, positionBytes: number, into: Buffer): Buffer {
  readSync(fd, into, 0, into.length, positionBytes);
  return into;
}

/** Where to stop the write: when a byte offset of the image has reached the target, or a phase begins. */
type KillPoint = { readonly fraction: number } | { readonly phase: string };

interface KilledRun {
  readonly killed: boolean;
  readonly exitCode: number | null;
  readonly stderr: string;
}

/**
 * Runs `reimage write --verify --json` and SIGKILLs it at `point`. The target's bytes at the
 * point are watched through the loop device's backing file (the loop driver writes into it).
 */
async function runAndKill(
  image: string,
  device: string,
  backing: string,
  point: KillPoint,
  imageBytes: Buffer,
): Promise<KilledRun> {
  const child = spawn(REIMAGE, ['write', image, device, '--verify', '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let killed = false;
  const kill = (): void => {
    if (killed || child.exitCode !== null) return;
    killed = child.kill('SIGKILL');
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr += text;
    if ('phase' in point && stderr.includes(`"phase":"${point.phase}"`)) kill();
  });
  const exited = new Promise<number | null>((resolvePromise) => child.on('exit', (code) => resolvePromise(code)));
  if ('fraction' in point) {
    const at = Math.floor((IMAGE_BYTES * point.fraction) / PROBE_BYTES) * PROBE_BYTES;
    const want = imageBytes.subarray(at, at + PROBE_BYTES);
    const fd = openSync(backing, 'r');
    const probe = Buffer.alloc(PROBE_BYTES);
    try {
      while (child.exitCode === null && !killed) {
        if (readProbe(fd, at, probe).equals(want)) kill();
        else await new Promise((resolvePromise) => setTimeout(resolvePromise, 1));
      }
    } finally {
      closeSync(fd);
    }
  }
  const exitCode = await exited;
  return { killed, exitCode, stderr };
}

describe('reimage write killed mid-way keeps the old LBA 0', () => {
  let dir: string;
  let image: string;
  let imageBytes: Buffer;
  let backing: string;
  let device: string | undefined;
  let oldFirstSector: Buffer;

  before(() => {
    requireTools();
    dir = mkdtempSync(join(tmpdir(), 'reimage-kill-'));
    image = join(dir, 'random.img');
    run('sh', ['-c', 'head -c "$1" /dev/urandom > "$0"', image, String(IMAGE_BYTES)]);
    const table = spawnSync('sfdisk', ['-q', image], { input: 'label: dos\nstart=2048, type=83\n' });
    assert.equal(table.status, 0, String(table.stderr));
    imageBytes = readRange(image, 0, IMAGE_BYTES);
    backing = join(dir, 'backing.img');
    run('truncate', ['-s', String(TARGET_BYTES), backing]);
    oldFirstSector = randomBytes(SECTOR_BYTES);
    writeAtPath(backing, oldFirstSector, 0);
    device = attachLoop(backing);
  });

  after(() => {
    if (device !== undefined) detachLoop(device);
    if (dir !== undefined) removeDir(dir);
  });

  const points: readonly KillPoint[] = [
    { fraction: 0.1 },
    { fraction: 0.4 },
    { fraction: 0.7 },
    { fraction: 0.97 },
    // Every range written, the read-back under way: the last moment before the commit.
    { phase: 'read back' },
  ];

  for (const point of points) {
    const name = 'fraction' in point ? `${point.fraction * 100}% of the image written` : `the ${point.phase} phase`;
    it(`SIGKILL at ${name}`, async () => {
      assert.ok(device !== undefined);
      // Old bytes where the kill point is watched (earlier runs wrote the image there).
      if ('fraction' in point) {
        const at = Math.floor((IMAGE_BYTES * point.fraction) / PROBE_BYTES) * PROBE_BYTES;
        writeAtPath(backing, Buffer.alloc(PROBE_BYTES, 0xa5), at);
      }
      spawnSync('blockdev', ['--flushbufs', device]);
      const result = await runAndKill(image, device, backing, point, imageBytes);
      assert.ok(result.killed, `the write ended (exit ${result.exitCode}) before it could be killed: ${result.stderr}`);
      assert.equal(result.exitCode, null, 'killed by the signal');
      // A buffered write the killed process left dirty in the device's page cache reaches the
      // backing file only on writeback: flush it, so an early LBA 0 write cannot hide there.
      spawnSync('blockdev', ['--flushbufs', device]);
      assert.equal(sha256(readRange(backing, 0, SECTOR_BYTES)), sha256(oldFirstSector), 'LBA 0 is the old one');
      // Touched: the image's second MiB is there already, so the kill was mid-write, not before it.
      assert.equal(sha256(readRange(backing, MIB, MIB)), sha256(imageBytes.subarray(MIB, 2 * MIB)));
    });
  }

  it('a complete write then leaves the image, LBA 0 included', async () => {
    assert.ok(device !== undefined);
    const result = spawnSync(REIMAGE, ['write', image, device, '--verify'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(sha256(readRange(backing, 0, SECTOR_BYTES)), sha256(imageBytes.subarray(0, SECTOR_BYTES)));
    assert.equal(sha256(readRange(backing, 0, IMAGE_BYTES)), sha256(imageBytes));
  });
});
