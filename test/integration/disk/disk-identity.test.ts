// The disk identity the recovery initramfs finds its disk by, read from a table's own bytes, against
// util-linux's sfdisk as the oracle: tables sfdisk wrote (random and given ids) and an id sfdisk
// changed in place afterwards.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DiskIdentity, parsePartitionTable, TABLE_HEAD_BYTES } from '../../../src/disk/index.ts';

const MIB = 1024 * 1024;
const IMAGE_BYTES = 64 * MIB;

const sfdisk = (args: readonly string[], input?: string): string =>
  execFileSync('sfdisk', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

function identityOf(path: string): DiskIdentity {
  const head = Buffer.alloc(TABLE_HEAD_BYTES);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return parsePartitionTable(head, IMAGE_BYTES).identity;
}

/** sfdisk --disk-id prints `0x1a2b3c4d` for msdos and the GUID in upper case for GPT. */
function sfdiskIdentity(path: string): DiskIdentity {
  const text = sfdisk(['--disk-id', path]).trim();
  if (text.startsWith('0x')) return { scheme: 'msdos', signature: Number.parseInt(text.slice(2), 16) };
  return { scheme: 'gpt', diskGuid: text.toLowerCase() };
}

describe('PartitionTable.identity against sfdisk', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'reimage-disk-identity-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function image(name: string, script: string): string {
    const path = join(dir, name);
    writeFileSync(path, '');
    truncateSync(path, IMAGE_BYTES);
    sfdisk(['-q', path], script);
    return path;
  }

  for (const label of ['dos', 'gpt']) {
    it(`${label}: a random id sfdisk chose`, () => {
      const path = image(`random-${label}.img`, `label: ${label}\nstart=2048, size=16384\n`);
      assert.deepEqual(identityOf(path), sfdiskIdentity(path));
    });
  }

  it('dos: a given id with every byte distinct (byte order shows) and one with the top bit set', () => {
    for (const id of ['0x12345678', '0xfedcba98']) {
      const path = image(`given-${id}.img`, `label: dos\nlabel-id: ${id}\nstart=2048, size=16384\n`);
      assert.deepEqual(identityOf(path), { scheme: 'msdos', signature: Number.parseInt(id.slice(2), 16) });
      assert.deepEqual(identityOf(path), sfdiskIdentity(path));
    }
  });

  it('gpt: a given GUID (mixed-endian on the disk) reads back as sfdisk -d prints it', () => {
    const guid = '00112233-4455-6677-8899-AABBCCDDEEFF';
    const path = image('given.img', `label: gpt\nlabel-id: ${guid}\nstart=2048, size=16384\n`);
    assert.deepEqual(identityOf(path), { scheme: 'gpt', diskGuid: guid.toLowerCase() });
    assert.match(sfdisk(['-d', path]), new RegExp(`label-id: ${guid}`));
  });

  it('an id changed in place with sfdisk --disk-id is read anew', () => {
    const dos = image('changed-dos.img', 'label: dos\nstart=2048, size=16384\n');
    sfdisk(['--disk-id', dos, '0xa1b2c3d4']);
    assert.deepEqual(identityOf(dos), { scheme: 'msdos', signature: 0xa1b2c3d4 });
    const gpt = image('changed-gpt.img', 'label: gpt\nstart=2048, size=16384\n');
    sfdisk(['--disk-id', gpt, 'DEADBEEF-0000-1111-2222-333344445555']);
    assert.deepEqual(identityOf(gpt), { scheme: 'gpt', diskGuid: 'deadbeef-0000-1111-2222-333344445555' });
  });
});
