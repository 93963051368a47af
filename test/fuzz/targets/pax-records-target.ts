import { decodePaxRecords, encodePaxRecords } from '../../../src/retain/pax-records.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import type { SeededRandom } from '../seeded-random.ts';

const LENGTH_LIES = ['0', '1', '2', '3', '012', '99999999999', '999999999999', '1'.repeat(14), '-1', '+9', ' 9'];

/** pax records: `LEN KEY=VALUE\n`, where LEN counts the whole record. */
export const paxRecordsTarget: FuzzTarget = {
  name: 'pax-records',
  dictionary: ['path=', 'size=', 'mtime=', 'SCHILY.xattr.', '=', ' ', '\n', '0 ', '99 ', '12 a=\n'],
  async seeds() {
    return [
      encodePaxRecords([
        ['path', 'etc/ssh/ssh_host_ed25519_key'],
        ['mtime', '1700000000.123456789'],
        ['uid', '3000000'],
        ['SCHILY.xattr.user.bin', Buffer.from([0, 10, 0x3d, 0x20, 0xff])],
      ]),
      encodePaxRecords([['k', 'x'.repeat(93)]]),
      encodePaxRecords([['linkpath', '']]),
    ];
  },
  mutateStructure(input: Buffer, random: SeededRandom): Buffer {
    // Rewrite the LEN of one record: the decoder trusts it to find the next one.
    const starts = [0];
    for (let i = 0; i < input.length - 1; i += 1) if (input[i] === 0x0a) starts.push(i + 1);
    const start = random.pick(starts);
    const space = input.indexOf(0x20, start);
    if (space === -1) return input;
    const old = Number(input.toString('latin1', start, space));
    const lie = random.chance(0.5)
      ? random.pick(LENGTH_LIES)
      : String(Number.isSafeInteger(old) ? old + random.below(5) - 2 : random.below(1000));
    return Buffer.concat([input.subarray(0, start), Buffer.from(lie, 'latin1'), input.subarray(space)]);
  },
  async parse(input) {
    const records = decodePaxRecords(input);
    for (const [key, value] of records) {
      if (key.length === 0) return { invalid: 'an empty key' };
      if (!Buffer.isBuffer(value)) return { invalid: `value of ${key} is not a Buffer` };
    }
    return SOUND;
  },
};
