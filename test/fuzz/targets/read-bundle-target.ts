import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkBundle } from '../../../src/retain/read-bundle.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import { fixChecksum, mutateTar } from '../mutate-tar.ts';
import { retainBundleSeeds } from '../retain-bundle-seeds.ts';
import { makeScratchDir } from '../scratch-file.ts';
import type { SeededRandom } from '../seeded-random.ts';

const MANIFEST_VALUES = [
  'null',
  '-1',
  '1e400',
  '4294967296',
  '9007199254740993',
  '"../../etc/shadow"',
  '"/etc/../x"',
  '"/"',
  '[]',
  '{}',
  '"hardlink"',
  '"symlink"',
  '"directory"',
  '"/etc"',
  '"/etc/hostname"',
  '"/etc/\\u001b[2Jx"',
  'true',
];

/**
 * Replaces the manifest member's JSON (the last member before the end marker) and fixes its size
 * field and checksum, so the manifest parser and the member checks see the new text.
 */
export function replaceManifest(input: Buffer, edit: (json: string) => string): Buffer {
  const jsonStart = input.indexOf('{"format"');
  if (jsonStart < 512 || jsonStart % 512 !== 0) return input;
  const headerOffset = jsonStart - 512;
  const jsonEnd = input.indexOf(0, jsonStart);
  if (jsonEnd === -1) return input;
  const body = Buffer.from(edit(input.toString('utf8', jsonStart, jsonEnd)), 'utf8');
  const header = Buffer.from(input.subarray(headerOffset, jsonStart));
  header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124, 12, 'latin1');
  fixChecksum(header, 0);
  const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  body.copy(padded);
  return Buffer.concat([input.subarray(0, headerOffset), header, padded, Buffer.alloc(1024)]);
}

/** Rewrites one JSON value of the manifest: wrong types, huge numbers, hostile or colliding paths. */
function mutateManifest(input: Buffer, random: SeededRandom): Buffer {
  return replaceManifest(input, (json) => {
    const values = [...json.matchAll(/:(-?[0-9]+|"(?:[^"\\]|\\.)*"|true|false|null|\[\])/g)];
    if (values.length === 0) return json;
    const target = random.pick(values);
    const at = (target.index ?? 0) + 1;
    return `${json.slice(0, at)}${random.pick(MANIFEST_VALUES)}${json.slice(at + (target[1]?.length ?? 0))}`;
  });
}

/** The whole bundle check restore and verify run before acting: tar walk, manifest, member checks, digests. */
export function createReadBundleTarget(): FuzzTarget {
  const scratch = makeScratchDir();
  const bundlePath = join(scratch.dir, 'bundle.tar');
  return {
    name: 'read-bundle',
    dictionary: ['{"format":"reimage-retain-bundle"', '"entries":[]', 'reimage-retain-manifest.json', '"type":"file"'],
    async seeds() {
      return retainBundleSeeds();
    },
    mutateStructure(input, random) {
      return random.chance(0.5) ? mutateManifest(input, random) : mutateTar(input, random);
    },
    async parse(input) {
      writeFileSync(bundlePath, input);
      const { manifest, members } = await checkBundle(bundlePath);
      if (members.length !== manifest.entries.length) return { invalid: 'members and entries differ in number' };
      return SOUND;
    },
    async close() {
      scratch.remove();
    },
  };
}
