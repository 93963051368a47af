import { imageSizeNote } from './image-size-note.ts';
import { describePartitionRef, partitionDevicePath } from './partition-name.ts';
import type { PartitionRef, Plan } from './plan-schema.ts';

function where(plan: Plan, ref: PartitionRef): string {
  const words = describePartitionRef(ref);
  // Device names only make sense for a block device, not for a disk image file.
  return typeof ref === 'number' && plan.disk.startsWith('/dev/')
    ? `${words} (${partitionDevicePath(plan.disk, ref)})`
    : words;
}

/** What a plan will do, in plain words, for `reimage plan validate` and the runner's log. */
export function describePlan(plan: Plan): string[] {
  const optional = plan.retain.paths.filter((entry) => typeof entry !== 'string' && entry.optional).length;
  const lines = [
    `Disk: ${plan.disk} will be overwritten with a new OS image.`,
    `Image: ${plan.image.path} on ${where(plan, plan.image.partition)}, expected SHA-256 ${plan.image.sha256}.`,
    plan.image.bmap === undefined
      ? 'Block map: none; the whole image is written (zero ranges as cheaply as the disk allows).'
      : `Block map: ${plan.image.bmap}; only mapped ranges are written, each checked against its digest.`,
    imageSizeNote(plan),
    `Retain: ${plan.retain.paths.length} path(s) (${optional} optional) read from ${where(plan, plan.retain.partition)}; owners ${plan.retain.owners === 'by-name' ? "mapped by name through the new root's accounts" : 'kept as numbers'}.`,
  ];
  for (const entry of plan.retain.paths) {
    lines.push(typeof entry === 'string' ? `  - ${entry}` : `  - ${entry.path}${entry.optional ? ' (optional)' : ''}`);
  }
  lines.push('Restore: mount the new layout in this order:');
  for (const mount of plan.restore.mounts) lines.push(`  - ${where(plan, mount.partition)} at ${mount.at}`);
  lines.push(`Logs: copied into ${plan.restore.logs} in the new root.`);
  if (plan.restore.after.length > 0) {
    lines.push(`After the restore, run chrooted in the new root (${plan.restore.after.length} command(s)):`);
    for (const command of plan.restore.after) lines.push(`  $ ${command}`);
  }
  lines.push(`Finish: ${plan.finish}.`);
  return lines;
}
