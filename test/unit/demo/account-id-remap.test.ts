import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountIdRemap } from '../../../src/demo/account-id-remap.ts';

describe('accountIdRemap', () => {
  it('maps each name the new root has under another id, and nothing else', () => {
    const remap = accountIdRemap(
      {
        passwd:
          'root:x:0:0::/root:/bin/sh\nkiosk:x:1001:1001::/:/bin/sh\ngone:x:1005:1005::/:/bin/sh\nsame:x:7:7::/:/bin/sh\n',
        group: 'root:x:0:\nkiosk:x:1001:\nssl-cert:x:111:\n',
      },
      {
        passwd:
          'root:x:0:0::/root:/bin/sh\nsame:x:7:7::/:/bin/sh\nkiosk:x:2001:2001::/:/bin/sh\nkiosk:x:9999:9999::/:/bin/sh\n',
        group: 'root:x:0:\nssl-cert:x:118:\nkiosk:x:2001:\n',
      },
    );
    assert.deepEqual([...remap.uid], [[1001, 2001]]);
    assert.deepEqual(
      [...remap.gid],
      [
        [1001, 2001],
        [111, 118],
      ],
    );
  });
});
