/**
 * The demo's fixed facts in one place: disk layouts, labels, accounts, versions and the retained
 * paths. The builders, the plan and the tests all read them from here, so they cannot drift apart.
 */

/** GPT partition type GUIDs the demo uses: GRUB's BIOS boot partition (its core.img) and Linux data. */
export const gptBiosBootType = '21686148-6449-6E6F-744E-656564454649';
export const gptLinuxFilesystemType = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

/** One line of an sfdisk script: a partition's size (absent = the rest) and its type. */
export interface PartitionSpec {
  readonly number: number;
  /** Absent: take the rest of the disk (or of the extended partition). */
  readonly sizeMiB?: number;
  /** msdos: the MBR type byte as hex text ("83" Linux, "5" extended); GPT: the type GUID. */
  readonly type: '83' | '5' | typeof gptBiosBootType | typeof gptLinuxFilesystemType;
  readonly bootable?: boolean;
  /** ext4 label when the builder formats it; absent leaves it unformatted (zeros). */
  readonly ext4Label?: string;
}

/**
 * A disk image's size and its partitions, in table order. msdos: sfdisk numbers them (logical ones
 * from 5); GPT: each takes the entry its `number` names, so gaps in the numbering stay gaps.
 */
export interface DiskLayout {
  /** Absent: msdos. */
  readonly table?: 'msdos' | 'gpt';
  readonly sizeMiB: number;
  readonly partitions: readonly PartitionSpec[];
}

export const oldRootLabel = 'OLD_ROOT';
export const newRootLabel = 'NEW_ROOT';
export const kioskDataLabel = 'KIOSK_DATA';

/**
 * Like the original machines: p1 and p2 from an older layout, then an extended partition with the
 * old root (p5, which also holds the new image file) and the data partition (p6, /kiosk).
 */
export const oldDiskLayout: DiskLayout = {
  sizeMiB: 512,
  partitions: [
    { number: 1, sizeMiB: 16, type: '83' },
    { number: 2, sizeMiB: 96, type: '83' },
    { number: 3, type: '5' },
    { number: 5, sizeMiB: 288, type: '83', ext4Label: oldRootLabel },
    { number: 6, type: '83', ext4Label: kioskDataLabel },
  ],
};

/**
 * The same old machine with a GPT table (built only when asked: ensureGptOldDisk). GPT has no
 * extended partition and uses sectors 1–33 itself, so GRUB's core.img gets a BIOS boot partition
 * (p1) instead of the post-MBR gap; the old root (p5, at 114 MiB as on msdos) and the kiosk data
 * (p6) keep their numbers, so the demo plan fits both disks.
 */
export const oldGptDiskLayout: DiskLayout = {
  table: 'gpt',
  sizeMiB: 512,
  partitions: [
    { number: 1, sizeMiB: 1, type: gptBiosBootType },
    { number: 2, sizeMiB: 16, type: gptLinuxFilesystemType },
    { number: 3, sizeMiB: 96, type: gptLinuxFilesystemType },
    { number: 5, sizeMiB: 288, type: gptLinuxFilesystemType, ext4Label: oldRootLabel },
    { number: 6, type: gptLinuxFilesystemType, ext4Label: kioskDataLabel },
  ],
};

/** The new OS: root on p2, an empty spare p5, fresh kiosk data on p6; smaller than the old disk. */
export const newImageLayout: DiskLayout = {
  sizeMiB: 384,
  partitions: [
    { number: 1, sizeMiB: 16, type: '83' },
    { number: 2, sizeMiB: 224, type: '83', bootable: true, ext4Label: newRootLabel },
    { number: 3, type: '5' },
    { number: 5, sizeMiB: 16, type: '83' },
    { number: 6, type: '83', ext4Label: kioskDataLabel },
  ],
};

export const oldRootPartition = 5;
export const newRootPartition = 2;
export const kioskDataPartition = 6;

export const oldOsVersion = '1.0';
export const newOsVersion = '2.0';

/** Where the old root holds the new image and its block map; the plan names these paths. */
export const newImageFilePath = '/new-os.img.zst';
export const newImageBmapFilePath = '/new-os.img.bmap';

/** The account databases differ on purpose, so restoring owners by name is actually exercised. */
export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

export interface Group {
  readonly name: string;
  readonly gid: number;
  readonly members?: readonly string[];
}

export interface AccountDatabase {
  readonly accounts: readonly Account[];
  readonly groups: readonly Group[];
}

export const oldAccounts: AccountDatabase = {
  accounts: [
    { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh' },
    { name: 'daemon', uid: 1, gid: 1, home: '/usr/sbin', shell: '/bin/false' },
    { name: 'sshd', uid: 101, gid: 65534, home: '/run/sshd', shell: '/bin/false' },
    { name: 'kiosk', uid: 1001, gid: 1001, home: '/home/kiosk', shell: '/bin/sh' },
  ],
  groups: [
    { name: 'root', gid: 0 },
    { name: 'daemon', gid: 1 },
    { name: 'shadow', gid: 42 },
    { name: 'ssl-cert', gid: 111, members: ['kiosk'] },
    { name: 'kiosk', gid: 1001 },
    { name: 'nogroup', gid: 65534 },
  ],
};

export const newAccounts: AccountDatabase = {
  accounts: [
    { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh' },
    { name: 'daemon', uid: 1, gid: 1, home: '/usr/sbin', shell: '/bin/false' },
    { name: 'messagebus', uid: 100, gid: 102, home: '/nonexistent', shell: '/bin/false' },
    { name: 'sshd', uid: 104, gid: 65534, home: '/run/sshd', shell: '/bin/false' },
    { name: 'kiosk', uid: 2001, gid: 2001, home: '/home/kiosk', shell: '/bin/sh' },
  ],
  groups: [
    { name: 'root', gid: 0 },
    { name: 'daemon', gid: 1 },
    { name: 'shadow', gid: 42 },
    { name: 'messagebus', gid: 102 },
    { name: 'ssl-cert', gid: 118, members: ['kiosk'] },
    { name: 'kiosk', gid: 2001 },
    { name: 'nogroup', gid: 65534 },
  ],
};

/**
 * What the plan retains from the old root. It covers the cases the original scripts got wrong: a
 * name with a space, two files with the same basename, a symlink, a hard link, an ACL, a `user.*`
 * xattr, a file capability, directories whose contents have their own owners and modes, and an
 * optional path that is absent.
 */
export type RetainEntry = string | { readonly path: string; readonly optional: true };

export const retainEntries: readonly RetainEntry[] = [
  '/etc/machine-id',
  '/etc/hostname',
  '/etc/ssh/ssh_host_*',
  { path: '/etc/pki/tls/private', optional: true },
  '/etc/pki/tls/certs/kiosk.crt',
  '/etc/kiosk',
  '/var/lib/kiosk',
  '/usr/local/bin/kiosk-agent',
  { path: '/etc/enrolment-token', optional: true },
];

/** The SSH host key types generated for the old OS (RSA at 2048 bits to keep the build quick). */
export const sshHostKeyTypes = [
  { type: 'ed25519', bits: undefined },
  { type: 'ecdsa', bits: 256 },
  { type: 'rsa', bits: 2048 },
] as const;

/** The kernel modules the demo initrd loads to reach a virtio disk holding ext4. */
export const demoInitrdModules = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'] as const;

/** Printed around the identity block that both demo OSes print on the serial console at boot. */
export const identityBeginMarker = '=== REIMAGE-DEMO IDENTITY BEGIN ===';
export const identityEndMarker = '=== REIMAGE-DEMO IDENTITY END ===';
