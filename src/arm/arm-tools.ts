import { RECOVERY_INITRAMFS_TOOLS } from '../runner/runtime-tools.ts';

/**
 * What arm itself spawns on the machine, besides the recovery initramfs's tools: the refuge's
 * extents (filefrag), its immutable flag (lsattr, chattr), the recovery core.img (grub-mkimage),
 * xfs's free space (xfs_db), and the firmware the recovery initramfs's modules name (modinfo).
 */
export const ARM_TOOLS: readonly string[] = ['filefrag', 'lsattr', 'chattr', 'grub-mkimage', 'xfs_db', 'modinfo'];

/**
 * What the portable runtime carries: everything arm runs on the old OS, and everything the
 * recovery initramfs it builds there carries (its portable part is the runtime's own files).
 */
export const PORTABLE_RUNTIME_TOOLS: readonly string[] = [...new Set([...RECOVERY_INITRAMFS_TOOLS, ...ARM_TOOLS])];
