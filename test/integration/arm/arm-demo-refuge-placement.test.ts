import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../../src/core/logger.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { ensureGptOldDisk } from '../../../src/demo/demo-fixtures.ts';
import { kioskDataPartition, newRootPartition } from '../../../src/demo/demo-layout.ts';
import { type DemoWorkspace, prepareDemo } from '../../../src/demo/demo-session.ts';
import { readArmedMap } from '../../../src/demo/retained-bytes.ts';
import { armDemoDisk } from '../../helpers/arm-demo.ts';
import { readRefugePlacement } from '../../helpers/refuge-placement.ts';

// Where the demo's refuge lands, on the msdos and the GPT old disk: the old root (p5, 114–402 MiB)
// lies under the new root (p2, 17–241 MiB) and the new kiosk data (p6, 259–384 MiB), both mounted
// read-write before the commit, so arm can only keep the refuge there if the armed run protects it
// (ext bad-block list). The e2e tests (arm-boot, arm-gpt) then exercise that protection for real;
// this test keeps them from passing vacuously should the layout change.
describe('the demo refuge lies inside new partitions the restore mounts read-write', () => {
  let workspace: DemoWorkspace;
  let gptDiskPath: string;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-refuge-placement');
    gptDiskPath = await ensureGptOldDisk(workspace.fixtures);
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  for (const table of ['msdos', 'gpt'] as const) {
    it(`on the ${table} old disk`, async () => {
      const diskPath = join(workspace.dir, `${table}.img`);
      await runCommand('cp', [
        '--sparse=always',
        table === 'gpt' ? gptDiskPath : workspace.fixtures.oldDiskPath,
        diskPath,
      ]);
      const armed = await armDemoDisk({ ...workspace, diskPath });
      assert.equal(armed.exitCode, 0, armed.stderr);
      const placement = await readRefugePlacement(diskPath);
      const map = await readArmedMap(diskPath);
      assert.deepEqual(
        map.writablePartitions.map((p) => [p.number, p.filesystem]),
        [
          [newRootPartition, 'ext4'],
          [kioskDataPartition, 'ext4'],
        ],
      );
      const inside = new Map(placement.insideWritable.map((p) => [p.number, p.bytes]));
      assert.ok(
        (inside.get(newRootPartition) ?? 0) > 0,
        `refuge bytes inside the new root: ${JSON.stringify([...inside])}`,
      );
      // Never a byte the new image writes.
      for (const range of placement.ranges) {
        for (const mapped of map.ranges) {
          const overlap =
            range.offsetBytes < mapped.offsetBytes + mapped.lengthBytes &&
            mapped.offsetBytes < range.offsetBytes + range.lengthBytes;
          assert.equal(overlap, false, `refuge ${JSON.stringify(range)} vs mapped ${JSON.stringify(mapped)}`);
        }
      }
    });
  }
});
