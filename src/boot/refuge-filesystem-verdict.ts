/**
 * Why a refuge cannot lie in partitions of these types. The refuge's promise is that the file's
 * blocks, as FIEMAP gives them, are the disk's sectors the recovery path reads without any
 * filesystem or device mapper, and that nothing moves them until the commit.
 */
const REFUSED: Readonly<Record<string, string>> = {
  LVM2_member:
    'a refuge cannot lie under LVM: the logical volume maps its blocks onto the disk through device-mapper, so the filesystem\'s block numbers are not disk sectors (and "pvmove" may move them)',
  crypto_LUKS:
    "a refuge cannot lie under dm-crypt (LUKS): the disk holds ciphertext after a header, so the filesystem's blocks are neither at those sectors nor those bytes",
  linux_raid_member:
    "a refuge cannot lie under md RAID: md spreads and offsets the filesystem's blocks over member disks, so its block numbers are not this disk's sectors",
  btrfs:
    'a refuge cannot lie in btrfs: it moves extents by itself (balance, copy-on-write on every write, scrub repair), and its addresses are logical ones mapped through chunks onto devices',
  vfat: 'a refuge cannot lie in vfat: FAT has no immutable flag, so nothing keeps a defragmenter or fsck from moving the file or reusing its clusters before the commit',
};

const ACCEPTED: ReadonlySet<string> = new Set(['ext2', 'ext3', 'ext4', 'xfs']);

/**
 * Whether a refuge may lie in a partition whose `blkid` TYPE is `type`: ext2/3/4 and xfs sit
 * directly on the partition and keep an immutable file in place; anything else is refused with
 * why. Pure.
 */
export function refugeFilesystemVerdict(type: string | undefined): { ok: true } | { ok: false; reason: string } {
  if (type === undefined || type === '') {
    return { ok: false, reason: 'a refuge needs a filesystem, and blkid finds none in this partition' };
  }
  if (ACCEPTED.has(type)) return { ok: true };
  const reason = REFUSED[type];
  if (reason !== undefined) return { ok: false, reason };
  return {
    ok: false,
    reason: `a refuge cannot lie in ${JSON.stringify(type)}: reimage places it only in ext2, ext3, ext4 or xfs`,
  };
}
