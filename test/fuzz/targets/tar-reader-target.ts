import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readTarMembers } from '../../../src/retain/tar-reader.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import { mutateTar } from '../mutate-tar.ts';
import { retainBundleSeeds } from '../retain-bundle-seeds.ts';
import { makeScratchDir } from '../scratch-file.ts';

/** The member walk over a whole archive: pax headers applied, contents skipped by offset. */
export function createTarReaderTarget(): FuzzTarget {
  const scratch = makeScratchDir();
  const fd = openSync(join(scratch.dir, 'archive.tar'), 'w+');
  return {
    name: 'tar-reader',
    dictionary: ['ustar\u000000', '\u0000'.repeat(512), 'PaxHeaders/', '30 mtime=1700000000.123456789\n'],
    async seeds() {
      return retainBundleSeeds();
    },
    mutateStructure: mutateTar,
    async parse(input) {
      ftruncateSync(fd, 0);
      writeSync(fd, input, 0, input.length, 0);
      let previousEnd = 0;
      for (const member of readTarMembers(fd, input.length)) {
        const { dataOffsetBytes, headerOffsetBytes, sizeBytes } = member;
        if (![dataOffsetBytes, headerOffsetBytes, sizeBytes].every((n) => Number.isSafeInteger(n) && n >= 0)) {
          return {
            invalid: `member ${JSON.stringify(member.name)} has offsets ${headerOffsetBytes}/${dataOffsetBytes}/${sizeBytes}`,
          };
        }
        if (headerOffsetBytes < previousEnd)
          return { invalid: `member ${JSON.stringify(member.name)} overlaps the previous one` };
        const carriesData = member.typeFlag === '0' || member.typeFlag === '7';
        if (carriesData && dataOffsetBytes + sizeBytes > input.length)
          return { invalid: 'content past the end of the archive' };
        previousEnd = dataOffsetBytes + (carriesData ? sizeBytes : 0);
      }
      return SOUND;
    },
    async close() {
      closeSync(fd);
      scratch.remove();
    },
  };
}
