import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { identityBeginMarker, identityEndMarker } from '../../../src/demo/demo-layout.ts';
import { renderDemoPlan, withPlanDisk } from '../../../src/demo/demo-plan.ts';
import { parseIdentityReport } from '../../../src/demo/identity-report.ts';

const block = [
  '[    3.4] EXT4-fs (vda2): mounted filesystem',
  identityBeginMarker,
  'os-version: 2.0',
  'os-name: Demo Kiosk OS 2.0',
  'machine-id: 0123456789abcdef0123456789abcdef',
  'ssh-host-key: ssh_host_ed25519_key SHA256:IHeV9yrCQLzrRyPRT7DNQ6CU/VoB78PrIx7PxsqO5xc',
  'entry: 750 2001 2001 directory|/etc/kiosk',
  'entry: 644 2001 2001 regular file|/etc/kiosk/screen layout.conf',
  'entry: 777 2001 2001 symbolic link|/etc/kiosk/current',
  '[    3.6] random: crng init done',
  'report-json: present',
  identityEndMarker,
  '[    3.7] reboot: Power down',
].join('\r\n');

describe('parseIdentityReport', () => {
  it('reads every field of the block, ignoring kernel lines and CRs', () => {
    const report = parseIdentityReport(block);
    assert.ok(report);
    assert.equal(report.osVersion, '2.0');
    assert.equal(report.prettyName, 'Demo Kiosk OS 2.0');
    assert.equal(report.machineId, '0123456789abcdef0123456789abcdef');
    assert.deepEqual(report.sshHostKeySha256, {
      ssh_host_ed25519_key: 'SHA256:IHeV9yrCQLzrRyPRT7DNQ6CU/VoB78PrIx7PxsqO5xc',
    });
    assert.equal(report.reportJsonPresent, true);
    assert.deepEqual(report.entries[1], {
      mode: '644',
      uid: 2001,
      gid: 2001,
      kind: 'regular file',
      path: '/etc/kiosk/screen layout.conf',
    });
    assert.equal(report.entries.length, 3);
  });

  it('takes the last block when the log holds two boots', () => {
    const first = block.replace('os-version: 2.0', 'os-version: 1.0');
    assert.equal(parseIdentityReport(`${first}\n${block}`)?.osVersion, '2.0');
  });

  it('returns undefined for a boot that never finished the block', () => {
    assert.equal(parseIdentityReport('no block here'), undefined);
    assert.equal(parseIdentityReport(`${identityBeginMarker}\nos-version: 2.0\n`), undefined);
  });
});

describe('demo plan', () => {
  it('renders the original layout and rewrites only disk:', () => {
    const text = renderDemoPlan({ diskPath: '/cache/old disk.img', imageSha256: 'a'.repeat(64) });
    const moved = parse(withPlanDisk(text, '/tmp/copy: of disk.img')) as Record<string, unknown>;
    const original = parse(text) as Record<string, unknown>;
    assert.equal(original.disk, '/cache/old disk.img');
    assert.equal(moved.disk, '/tmp/copy: of disk.img');
    assert.deepEqual({ ...moved, disk: original.disk }, original);
    assert.deepEqual(original.restore, {
      mounts: [
        { partition: 2, at: '/' },
        { partition: 6, at: '/kiosk' },
      ],
      logs: '/kiosk/log',
      after: [],
    });
  });
});
