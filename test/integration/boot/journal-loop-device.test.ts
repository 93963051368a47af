import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createJournal,
  JOURNAL_SIZE_BYTES,
  type JournalLocation,
  readJournal,
  writeJournal,
} from '../../../src/boot/journal-file.ts';
import { decodeJournalSlot, encodeJournalSlot, JOURNAL_SLOT_SIZE_BYTES } from '../../../src/boot/journal-slot.ts';
import { initialJournalState, type JournalState, nextState } from '../../../src/boot/journal-state.ts';

/**
 * The journal on a real block device: a loop device over a file this test made, once with 512-byte
 * and once with 4096-byte logical blocks (a 4Kn disk). Each write must be on the device when
 * writeJournal resolves — checked through the backing file, not the device's own page cache —
 * and a write torn by dd over part of a slot must leave the older state trusted.
 */

const OFFSET_BYTES = 64 * 1024;
const ID = Buffer.from('c0c1c2c3c4c5c6c7c8c9cacbcccdcecf', 'hex');
const LOCATION: JournalLocation = { offsetBytes: OFFSET_BYTES, journalId: ID };

function sh(command: string, args: readonly string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** 100 states a run could write: an attempt, then durable progress growing by 1 MiB each time. */
function states(count: number): JournalState[] {
  const at = (i: number): string => new Date(Date.UTC(2026, 11, 1, 22, 0, i)).toISOString();
  let state = initialJournalState(at(0), { image: '9'.repeat(64) });
  const out = [state];
  const steps = [
    { type: 'begin-attempt', at: at(1) },
    { type: 'capture-started', at: at(2) },
    { type: 'bundle-persisted', at: at(3), bundleSha256: '8'.repeat(64) },
    { type: 'write-started', at: at(4), totalBytes: count * 1024 * 1024 },
  ] as const;
  for (const event of steps) {
    const result = nextState(state, event);
    assert.ok(result.ok);
    state = result.state;
    out.push(state);
  }
  for (let i = out.length; i < count; i++) {
    const result = nextState(state, { type: 'write-progress', at: at(i), durableBytes: i * 1024 * 1024 });
    assert.ok(result.ok, result.ok ? '' : result.reason);
    state = result.state;
    out.push(state);
  }
  return out;
}

for (const sectorBytes of [512, 4096]) {
  describe(`journal on a loop device with ${sectorBytes}-byte logical blocks`, () => {
    let dir = '';
    let backing = '';
    let device = '';

    before(() => {
      if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices)');
      dir = mkdtempSync(join(tmpdir(), 'reimage-journal-loop-'));
      backing = join(dir, 'disk.img');
      writeFileSync(backing, Buffer.alloc(1024 * 1024, 0x33));
      device = sh('losetup', ['-f', '--show', '-b', String(sectorBytes), backing]).trim();
    });
    after(() => {
      if (device !== '') sh('losetup', ['-d', device]);
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    /** The slots as the backing file holds them: what reached the "disk" below the loop device. */
    function slotsOnBackingFile(): [Buffer, Buffer] {
      const bytes = readFileSync(backing).subarray(OFFSET_BYTES, OFFSET_BYTES + JOURNAL_SIZE_BYTES);
      return [bytes.subarray(0, JOURNAL_SLOT_SIZE_BYTES), bytes.subarray(JOURNAL_SLOT_SIZE_BYTES)];
    }

    it('writes 100 states alternately, each durable and read back; a torn dd write leaves the older one', async () => {
      const all = states(100);
      let handle: FileHandle = await open(device, 'r+');
      try {
        const first = all[0];
        assert.ok(first !== undefined);
        await createJournal(handle, LOCATION, first);
        for (let i = 0; i < all.length; i++) {
          const state = all[i];
          assert.ok(state !== undefined);
          if (i > 0)
            assert.deepEqual(await writeJournal(handle, LOCATION, state), { sequence: BigInt(i), slotIndex: i % 2 });
          const read = await readJournal(handle, LOCATION);
          assert.ok(read.trusted);
          assert.equal(read.sequence, BigInt(i));
          assert.deepEqual(read.state, state);
          // Below the loop device: the slot just written is already in the backing file, intact.
          const onDisk = decodeJournalSlot(slotsOnBackingFile()[i % 2] ?? Buffer.alloc(0), ID);
          assert.ok(onDisk.trusted, onDisk.trusted ? '' : onDisk.detail);
          assert.equal(onDisk.sequence, BigInt(i));
        }
        const last = all[99];
        assert.ok(last !== undefined);
        // The next write (sequence 100 → slot 0) is torn: dd puts only its first sectors on the device.
        const next = encodeJournalSlot({ ...last, updatedAt: '2026-12-01T23:00:00.000Z' }, 100n, ID);
        assert.ok(next.ok);
        const partial = join(dir, 'partial');
        writeFileSync(partial, next.slot.subarray(0, 1536));
        await handle.close();
        sh('dd', [
          `if=${partial}`,
          `of=${device}`,
          'bs=512',
          `seek=${OFFSET_BYTES / 512}`,
          'conv=notrunc,fsync',
          'status=none',
        ]);
        sh('blockdev', ['--flushbufs', device]);
        handle = await open(device, 'r+');
        // The torn slot really is on the device: its first 1536 bytes are the new ones.
        assert.deepEqual(slotsOnBackingFile()[0].subarray(0, 1536), next.slot.subarray(0, 1536));
        const read = await readJournal(handle, LOCATION);
        assert.ok(read.trusted);
        assert.equal(read.sequence, 99n);
        assert.equal(read.slotIndex, 1);
        assert.deepEqual(read.state, last);
        // The bytes around the journal were never touched.
        const disk = readFileSync(backing);
        assert.ok(disk.subarray(0, OFFSET_BYTES).every((byte) => byte === 0x33));
        assert.ok(disk.subarray(OFFSET_BYTES + JOURNAL_SIZE_BYTES).every((byte) => byte === 0x33));
      } finally {
        await handle.close();
      }
    });
  });
}
