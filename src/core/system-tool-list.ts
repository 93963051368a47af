// The list alone, apart from the installer in system-tools.ts, so code the initramfs carries
// (which must not carry an apt routine) can name the package of a missing tool.

/** A system tool reimage (or its tests, benchmark and demo) runs, and the Debian package that has it. */
export interface SystemTool {
  readonly command: string;
  readonly debianPackage: string;
  readonly why: string;
}

/** Tools for the tests, the demo and the benchmark, with the Debian package of each. */
export const SYSTEM_TOOLS: readonly SystemTool[] = [
  { command: 'losetup', debianPackage: 'mount', why: 'loop devices for disk images' },
  { command: 'partx', debianPackage: 'util-linux', why: 'partitions of loop devices' },
  { command: 'blkid', debianPackage: 'util-linux', why: 'filesystem labels and UUIDs' },
  { command: 'sfdisk', debianPackage: 'fdisk', why: 'partition tables for demo and test disks' },
  { command: 'mkfs.ext4', debianPackage: 'e2fsprogs', why: 'ext4 filesystems' },
  { command: 'mkfs.xfs', debianPackage: 'xfsprogs', why: 'xfs filesystems' },
  { command: 'mkfs.vfat', debianPackage: 'dosfstools', why: 'vfat filesystems' },
  { command: 'fsck.vfat', debianPackage: 'dosfstools', why: 'checking vfat filesystems written by map' },
  { command: 'mcopy', debianPackage: 'mtools', why: 'files on vfat images (this kernel may lack vfat)' },
  { command: 'xfs_db', debianPackage: 'xfsprogs', why: 'the allocation map of xfs filesystems' },
  { command: 'dumpe2fs', debianPackage: 'e2fsprogs', why: 'the allocation map of ext4 filesystems' },
  { command: 'getfattr', debianPackage: 'attr', why: 'extended attributes' },
  { command: 'setfattr', debianPackage: 'attr', why: 'extended attributes' },
  { command: 'getfacl', debianPackage: 'acl', why: 'POSIX ACLs' },
  { command: 'setfacl', debianPackage: 'acl', why: 'POSIX ACLs' },
  { command: 'setcap', debianPackage: 'libcap2-bin', why: 'file capabilities' },
  { command: 'tar', debianPackage: 'tar', why: 'checking bundles with GNU tar' },
  { command: 'cpio', debianPackage: 'cpio', why: 'checking initramfs archives' },
  { command: 'busybox', debianPackage: 'busybox-static', why: 'the initramfs shell and tools' },
  { command: 'modprobe', debianPackage: 'kmod', why: 'kernel module dependencies' },
  { command: 'modinfo', debianPackage: 'kmod', why: 'firmware that kernel modules name' },
  { command: 'dpkg', debianPackage: 'dpkg', why: 'unpacking the Debian kernel package' },
  { command: 'perl', debianPackage: 'perl-base', why: 'nanosecond file times on restore' },
  { command: 'depmod', debianPackage: 'kmod', why: 'kernel module indexes' },
  { command: 'qemu-system-x86_64', debianPackage: 'qemu-system-x86', why: 'booting the reimage in a VM' },
  { command: 'qemu-img', debianPackage: 'qemu-utils', why: 'VM disk images' },
  { command: 'grub-mkimage', debianPackage: 'grub-common', why: 'the recovery boot path and the demo OS bootloader' },
  { command: 'bmaptool', debianPackage: 'bmap-tools', why: 'block maps of images' },
  { command: 'zstd', debianPackage: 'zstd', why: 'zstd images' },
  { command: 'xz', debianPackage: 'xz-utils', why: 'xz images' },
  { command: 'bzip2', debianPackage: 'bzip2', why: 'bzip2 images' },
  { command: 'lbzip2', debianPackage: 'lbzip2', why: 'parallel bzip2 decoding' },
  { command: 'pigz', debianPackage: 'pigz', why: 'parallel gzip' },
  { command: 'ssh-keygen', debianPackage: 'openssh-client', why: 'the demo machine identity' },
  { command: 'openssl', debianPackage: 'openssl', why: 'the demo TLS key and certificate' },
  { command: 'debootstrap', debianPackage: 'debootstrap', why: 'the benchmark OS image' },
];

/** Debian packages that are not tools on PATH but whose files are needed (GRUB's BIOS images). */
export const SYSTEM_FILES: readonly { path: string; debianPackage: string; why: string }[] = [
  { path: '/usr/lib/grub/i386-pc/boot.img', debianPackage: 'grub-pc-bin', why: "GRUB's BIOS images" },
  { path: '/bin/busybox', debianPackage: 'busybox-static', why: 'the static busybox the initramfs carries' },
];
