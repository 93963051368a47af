import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMountInfo } from '../../../src/disk/block-device.ts';

describe('parseMountInfo', () => {
  it('reads device numbers, mount points and sources, decoding octal escapes', () => {
    const text = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '90 22 7:1 / /mnt/my\\040disk rw,relatime shared:50 - ext4 /dev/loop0p1 rw',
      '91 22 0:45 / /proc rw - proc proc rw',
      '',
    ].join('\n');
    assert.deepEqual(parseMountInfo(text), [
      { deviceNumber: '254:0', mountPoint: '/', source: '/dev/vda' },
      { deviceNumber: '7:1', mountPoint: '/mnt/my disk', source: '/dev/loop0p1' },
      { deviceNumber: '0:45', mountPoint: '/proc', source: 'proc' },
    ]);
  });
});
