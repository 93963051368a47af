import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { archivePathForHost } from '../../../src/initramfs/merged-usr.ts';
import { type ArchiveEntry, listNewcArchive, newcStream } from '../../../src/initramfs/newc-archive.ts';

async function archiveBytes(entries: ArchiveEntry[]): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of newcStream(entries)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('newc archive', () => {
  it('reads back what it writes, parents implied, sorted, padded to 512 bytes', async () => {
    const bytes = await archiveBytes([
      { path: 'z/ü', kind: 'file', mode: 0o4755, data: Buffer.from('hello') },
      { path: 'a', kind: 'symlink', mode: 0o777, linkTarget: 'z/ü' },
      { path: 'z/d/e', kind: 'directory', mode: 0o700 },
    ]);
    assert.equal(bytes.length % 512, 0);
    const members = listNewcArchive(bytes);
    assert.deepEqual(
      members.map((m) => [m.path, m.mode.toString(8), m.nlink, m.sizeBytes]),
      [
        ['a', '120777', 1, 4],
        ['z', '40755', 3, 0],
        ['z/d', '40755', 3, 0],
        ['z/d/e', '40700', 2, 0],
        ['z/ü', '104755', 1, 5],
      ],
    );
    assert.equal(members[0]?.linkTarget, 'z/ü');
    assert.equal(Buffer.from(members[4]?.data ?? []).toString(), 'hello');
  });

  it('counts the name size in bytes, not characters', async () => {
    const bytes = await archiveBytes([{ path: 'ü', kind: 'file', mode: 0o644 }]);
    // "ü" is 2 bytes in UTF-8, plus the NUL.
    assert.equal(bytes.toString('latin1', 94, 102), '00000003');
  });
});

describe('archivePathForHost', () => {
  const cases: [string, string][] = [
    ['/lib/x86_64-linux-gnu/libc.so.6', 'usr/lib/x86_64-linux-gnu/libc.so.6'],
    ['/lib64/ld-linux-x86-64.so.2', 'usr/lib64/ld-linux-x86-64.so.2'],
    ['/bin/mount', 'usr/bin/mount'],
    ['/sbin', 'usr/sbin'],
    ['/usr/sbin/blkid', 'usr/sbin/blkid'],
    ['/library/x', 'library/x'],
  ];
  for (const [host, archive] of cases)
    it(`${host} → ${archive}`, () => assert.equal(archivePathForHost(host), archive));
});
