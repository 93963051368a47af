import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refugeFilesystemVerdict } from '../../../src/boot/refuge-filesystem-verdict.ts';

describe('refugeFilesystemVerdict', () => {
  for (const type of ['ext2', 'ext3', 'ext4', 'xfs']) {
    it(`accepts ${type}`, () => assert.deepEqual(refugeFilesystemVerdict(type), { ok: true }));
  }
  const refused: [string | undefined, RegExp][] = [
    ['LVM2_member', /under LVM: .*not disk sectors/],
    ['crypto_LUKS', /dm-crypt/],
    ['linux_raid_member', /md RAID/],
    ['btrfs', /btrfs: it moves extents .*balance.*copy-on-write/],
    ['vfat', /no immutable flag.*defragmenter or fsck/],
    ['ntfs', /"ntfs".*ext2, ext3, ext4 or xfs/],
    ['swap', /"swap"/],
    [undefined, /blkid finds none/],
    ['', /blkid finds none/],
  ];
  for (const [type, reason] of refused) {
    it(`refuses ${JSON.stringify(type)} saying why`, () => {
      const verdict = refugeFilesystemVerdict(type);
      assert.equal(verdict.ok, false);
      if (!verdict.ok) assert.match(verdict.reason, reason);
    });
  }
  it('quotes an odd type instead of printing its control characters', () => {
    const verdict = refugeFilesystemVerdict('x\ny');
    assert.ok(!verdict.ok && !verdict.reason.includes('\n'));
  });
});
