import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityInitScript } from '../../../src/demo/identity-report.ts';
import {
  OPERATOR_PLAN,
  OPERATOR_RUNTIME_ARCHIVE,
  OPERATOR_SCRIPT,
  operatorScript,
} from '../../../src/demo/operator-run.ts';

describe("the demo operator's script", () => {
  const lines = operatorScript().split('\n');
  const at = (pattern: RegExp): number => {
    const index = lines.findIndex((line) => pattern.test(line));
    assert.ok(index >= 0, `a line matches ${pattern}`);
    return index;
  };

  it('unpacks the runtime into a tmpfs and removes the copy on disk before arm measures the room', () => {
    const mount = at(/^mount -t tmpfs .* \/run\/reimage$/);
    const unpack = at(new RegExp(`^tar -xzf ${OPERATOR_RUNTIME_ARCHIVE} -C /run/reimage$`));
    const remove = at(new RegExp(`^rm -f ${OPERATOR_RUNTIME_ARCHIVE}$`));
    const arm = at(/\/run\/reimage\/bin\/reimage arm /);
    assert.ok(mount < unpack && unpack < remove && remove < arm);
  });

  it("arms with the running OS's defaults (no --disk, --kernel, --modules), its scratch in the tmpfs, and reboots", () => {
    const arm = lines[at(/\/run\/reimage\/bin\/reimage arm /)] ?? '';
    assert.equal(arm, `TMPDIR=/run/reimage/tmp /run/reimage/bin/reimage arm --plan ${OPERATOR_PLAN} --reboot`);
  });

  it("is what the old OS's init runs, read-write, with a reboot on SIGTERM as busybox init does", () => {
    const init = identityInitScript();
    const hook = init.indexOf(`if [ -x ${OPERATOR_SCRIPT} ]; then`);
    assert.ok(hook > 0);
    assert.ok(init.indexOf('mount -o remount,rw /', hook) > hook);
    assert.match(init, /trap '[^']*reboot -f' TERM/);
    assert.ok(init.indexOf(`  ${OPERATOR_SCRIPT}\n`, hook) > hook);
    assert.ok(hook < init.indexOf('IDENTITY BEGIN'), 'before the identity report and the power-off');
  });
});
