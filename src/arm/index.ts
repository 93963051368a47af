// Arming a machine for a power-safe reimage (issue 9): the checks, the refuge filled and read
// back, LBA 0 pointed at the recovery boot path; disarm; status. The CLI's arm, disarm and status
// verbs and (later) the fleet agent are thin front ends over these.
export { type ArmOptions, type ArmReport, armDisk } from './arm-disk.ts';
export { type ArmStatus, armStatus, formatArmStatus } from './arm-status.ts';
export { ARM_TOOLS, PORTABLE_RUNTIME_TOOLS } from './arm-tools.ts';
export { type DisarmReport, disarmDisk } from './disarm-disk.ts';
