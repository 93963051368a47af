import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { parseRecoveryCmdline } from '../../src/boot/recovery-cmdline.ts';
import { decodeRefugeHeader } from '../../src/boot/refuge-header.ts';
import { REFUGE_HEADER_BYTES } from '../../src/boot/refuge-layout.ts';
import { isReimageError } from '../../src/core/reimage-error.ts';
import { parseBlockMap } from '../../src/image/block-map.ts';
import { listInitramfsFile, listNewcArchive } from '../../src/initramfs/newc-archive.ts';
import { parsePlan } from '../../src/plan/load-plan.ts';
import { encodePaxRecords } from '../../src/retain/pax-records.ts';
import { checkBundle } from '../../src/retain/read-bundle.ts';
import { encodeUstarHeader } from '../../src/retain/tar-header.ts';
import { readTarMembers } from '../../src/retain/tar-reader.ts';
import { runReimage } from '../helpers/run-cli.ts';
import { guardAllocations } from './guard-allocations.ts';
import { fixChecksum } from './mutate-tar.ts';
import { retainBundleSeeds } from './retain-bundle-seeds.ts';
import { hasControlCharacters } from './run-fuzz.ts';
import { makeScratchDir } from './scratch-file.ts';
import { replaceManifest } from './targets/read-bundle-target.ts';
import { SEED_HEADER } from './targets/refuge-header-target.ts';

/**
 * Named regressions for hostile input: each crash the fuzzer found (with its minimized input
 * inline) and each "claims a huge size" case the contract names. Every parser must refuse with a
 * REIMAGE_… code, allocating no more than a small multiple of the input.
 */

const ALLOCATION_LIMIT_BYTES = 4 * 1024 * 1024;

async function expectRefused(code: string, pattern: RegExp, parse: () => unknown): Promise<void> {
  const { result, allocations } = await guardAllocations(ALLOCATION_LIMIT_BYTES, async () => parse());
  assert.ok(
    allocations.largestBytes <= ALLOCATION_LIMIT_BYTES,
    `allocated ${allocations.largestBytes} bytes for a hostile claim`,
  );
  assert.equal(result.status, 'rejected', 'the hostile input was accepted');
  if (result.status !== 'rejected') return;
  const error: unknown = result.reason;
  assert.ok(isReimageError(error), `not a ReimageError: ${String(error)}`);
  assert.equal(error.code, code);
  assert.match(error.message, pattern);
}

const scratch = makeScratchDir();
after(() => scratch.remove());

/** Runs the tar reader over `archive` from a file, as checkBundle does. */
function readArchive(archive: Buffer): unknown[] {
  const path = join(scratch.dir, 'archive.tar');
  writeFileSync(path, archive);
  const fd = openSync(path, 'r');
  try {
    return [...readTarMembers(fd, archive.length)];
  } finally {
    closeSync(fd);
  }
}

function header(typeFlag: string, name: string, sizeBytes: number): Buffer {
  return encodeUstarHeader({
    name,
    mode: 0o644,
    uid: 0,
    gid: 0,
    sizeBytes,
    mtimeSec: 0,
    typeFlag,
    linkName: '',
    userName: 'root',
    groupName: 'root',
    devMajor: 0,
    devMinor: 0,
  });
}

/** A header whose size field holds `sizeBytes` in GNU base-256 (what octal cannot hold), checksum fixed. */
function base256SizeHeader(typeFlag: string, sizeBytes: bigint): Buffer {
  const block = header(typeFlag, 'etc/huge', 0);
  block.fill(0, 124, 136);
  block[124] = 0x80;
  for (let i = 135, rest = sizeBytes; i > 124; i -= 1, rest >>= 8n) block[i] = Number(rest & 0xffn);
  fixChecksum(block, 0);
  return block;
}

const END = Buffer.alloc(1024);

/** ESC [2J clears the screen: the shortest proof that a message would drive the operator's terminal. */
const CLEAR_SCREEN = '\u001b[2J';

async function expectEscapedMessage(parse: () => Promise<unknown>): Promise<void> {
  await assert.rejects(parse, (error: unknown) => {
    assert.ok(isReimageError(error), `not a ReimageError: ${String(error)}`);
    assert.ok(!hasControlCharacters(error.message), `raw control characters in: ${JSON.stringify(error.message)}`);
    assert.match(error.message, /\\u001b\[2J/, 'the hostile text is shown, escaped');
    return true;
  });
}

describe('fuzz regressions: the tar and pax readers', () => {
  it('refuses a member header claiming 2^60 bytes (base-256) without allocating it', async () => {
    await expectRefused('REIMAGE_RETAIN_BUNDLE_CORRUPT', /number too large/, () =>
      readArchive(Buffer.concat([base256SizeHeader('0', 2n ** 60n), END])),
    );
  });

  it('refuses a member claiming 2^52 bytes (a safe integer) as content past the end, without allocating it', async () => {
    await expectRefused('REIMAGE_RETAIN_BUNDLE_CORRUPT', /content past end of file/, () =>
      readArchive(Buffer.concat([base256SizeHeader('0', 2n ** 52n), END])),
    );
  });

  it('refuses a pax header claiming 2^40 bytes before reading it', async () => {
    await expectRefused('REIMAGE_RETAIN_BUNDLE_CORRUPT', /pax header too large/, () =>
      readArchive(Buffer.concat([base256SizeHeader('x', 2n ** 40n), header('0', 'etc/x', 0), END])),
    );
  });

  it('refuses a pax size record of 2^60', async () => {
    const records = encodePaxRecords([['size', '1152921504606846976']]);
    const padded = Buffer.alloc(512);
    records.copy(padded);
    await expectRefused('REIMAGE_RETAIN_BUNDLE_CORRUPT', /bad pax size/, () =>
      readArchive(Buffer.concat([header('x', 'PaxHeaders/x', records.length), padded, header('0', 'etc/x', 0), END])),
    );
  });

  it('refuses a pax record whose LEN runs past the header', async () => {
    const records = Buffer.from('999999999999 path=etc/x\n');
    const padded = Buffer.alloc(512);
    records.copy(padded);
    await expectRefused('REIMAGE_RETAIN_BUNDLE_CORRUPT', /malformed pax header \(length past end\)/, () =>
      readArchive(Buffer.concat([header('x', 'PaxHeaders/x', records.length), padded, header('0', 'etc/x', 0), END])),
    );
  });
});

describe('fuzz regressions: messages quote hostile text instead of passing ESC to the terminal', () => {
  // Found by the tar-header target (seed 8): a non-octal field was copied raw into the message.
  it('tar header: a non-octal mode field', async () => {
    const block = header('0', 'etc/x', 0);
    block.fill(0, 100, 108);
    block.write(CLEAR_SCREEN, 100, 'latin1');
    fixChecksum(block, 0);
    await expectEscapedMessage(async () => readArchive(Buffer.concat([block, END])));
  });

  // Found by the tar-reader target (seed 8): `bad pax mtime "…"` with the record's bytes raw.
  it('tar reader: a pax mtime that is not a time', async () => {
    const records = encodePaxRecords([['mtime', `1${CLEAR_SCREEN}`]]);
    const padded = Buffer.alloc(512);
    records.copy(padded);
    await expectEscapedMessage(async () =>
      readArchive(Buffer.concat([header('x', 'PaxHeaders/x', records.length), padded, header('0', 'etc/x', 0), END])),
    );
  });

  // Found by the block-map target (seed 8): range text and the XML parser's context were raw.
  it('bmap: a range that is not a number', async () => {
    const xml = `<bmap version="2.0"><ImageSize>4096</ImageSize><BlockSize>4096</BlockSize><BlocksCount>1</BlocksCount>
<MappedBlocksCount>1</MappedBlocksCount><BlockMap><Range>${CLEAR_SCREEN}</Range></BlockMap></bmap>`;
    await expectEscapedMessage(async () => parseBlockMap(xml));
  });

  // Found by the read-bundle target (seed 3, with the manifest value "/etc/\u001b[2Jx").
  it('bundle: a manifest path that does not match its member', async () => {
    const [seed] = retainBundleSeeds();
    assert.ok(seed);
    const bundle = replaceManifest(seed, (json) => json.replace('"/etc/fifo"', '"/etc/\\u001b[2Jx"'));
    const path = join(scratch.dir, 'escape.tar');
    writeFileSync(path, bundle);
    await expectEscapedMessage(() => checkBundle(path));
  });
});

describe('fuzz regressions: the newc reader and `initramfs list`', () => {
  const trailerFree = (field: 'filesize' | 'namesize'): Buffer => {
    // One header, every field zero but the hostile one, then a little data.
    const fields = Array.from({ length: 13 }, () => '00000000');
    fields[field === 'filesize' ? 6 : 11] = 'FFFFFFFF';
    if (field === 'filesize') fields[11] = '00000002';
    return Buffer.from(`070701${fields.join('')}a\0${'\0'.repeat(64)}`, 'latin1');
  };

  it('refuses a member claiming a 4 GiB file size', async () => {
    await expectRefused('REIMAGE_INITRAMFS_ARCHIVE_CORRUPT', /runs past the end/, () =>
      listNewcArchive(trailerFree('filesize')),
    );
  });

  it('refuses a member claiming a 4 GiB name', async () => {
    await expectRefused('REIMAGE_INITRAMFS_ARCHIVE_CORRUPT', /runs past the end/, () =>
      listNewcArchive(trailerFree('namesize')),
    );
  });

  // Found by the initramfs-file target: zlib's bare Error reached the CLI as an "internal error" with a stack.
  it('a damaged gzip initramfs is REIMAGE_INITRAMFS_ARCHIVE_CORRUPT, not zlib’s Error', async () => {
    await expectRefused('REIMAGE_INITRAMFS_ARCHIVE_CORRUPT', /gzip stream of this initramfs is damaged/, () =>
      listInitramfsFile(Buffer.from('\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage', 'latin1')),
    );
  });

  it('a damaged zstd initramfs is REIMAGE_INITRAMFS_ARCHIVE_CORRUPT, not zlib’s Error', async () => {
    await expectRefused('REIMAGE_INITRAMFS_ARCHIVE_CORRUPT', /zstd stream of this initramfs is damaged/, () =>
      listInitramfsFile(Buffer.from('\x28\xb5\x2f\xfdgarbage', 'latin1')),
    );
  });

  it('stops unpacking a gzip bomb at the limit instead of taking the memory', () => {
    const bomb = gzipSync(Buffer.alloc(2 * 1024 * 1024));
    assert.throws(
      () => listInitramfsFile(bomb, 1024 * 1024),
      (e: unknown) =>
        isReimageError(e) && e.code === 'REIMAGE_INITRAMFS_ARCHIVE_CORRUPT' && /more than 1048576/.test(e.message),
    );
  });

  it('`reimage initramfs list` on a damaged gzip prints a REIMAGE error, no stack', () => {
    const file = join(scratch.dir, 'damaged.img.gz');
    writeFileSync(file, Buffer.from('\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage', 'latin1'));
    const { stderr } = runReimage(['initramfs', 'list', file]);
    assert.match(stderr, /REIMAGE_INITRAMFS_ARCHIVE_CORRUPT|not a valid newc|stream of this initramfs is damaged/);
    assert.doesNotMatch(stderr, /internal error|\n\s+at /);
  });
});

describe('fuzz regressions: the bmap parser', () => {
  it('takes ranges near 2^53 blocks as numbers, allocating nothing per block', async () => {
    const xml = `<bmap version="2.0"><ImageSize>9007199254740991</ImageSize><BlockSize>512</BlockSize>
<BlocksCount>17592186044416</BlocksCount><MappedBlocksCount>17592186044416</MappedBlocksCount>
<BlockMap><Range>0-17592186044415</Range></BlockMap></bmap>`;
    const { result, allocations } = await guardAllocations(ALLOCATION_LIMIT_BYTES, async () => parseBlockMap(xml));
    assert.ok(allocations.largestBytes <= ALLOCATION_LIMIT_BYTES);
    assert.equal(result.status, 'fulfilled');
    if (result.status === 'fulfilled') assert.equal(result.value.mappedBytes, 9007199254740991);
  });
});

/** Plan text is operator input: a YAML quirk must come back as a problem with a line, never as an exception. */
function expectPlanProblem(text: string, pattern: RegExp): void {
  const result = parsePlan(text);
  assert.equal(result.plan, undefined);
  assert.ok(
    result.problems.some((problem) => pattern.test(`${problem.field}: ${problem.message}`)),
    JSON.stringify(result.problems),
  );
}

describe('fuzz regressions: the plan loader', () => {
  // Found by the plan target, seed 1, iteration 498; minimized input "*a".
  it('an alias to an anchor that was never set is a plan problem, not a ReferenceError', () => {
    expectPlanProblem('*a', /alias/i);
    expectPlanProblem('version: 1\ndisk: *disk\n', /alias/i);
  });

  // Found by the plan target, seed 1, iteration 235 (minimized below): yaml's guard against alias bombs throws.
  it('an alias bomb is a plan problem, not a ReferenceError', () => {
    expectPlanProblem(
      'p: \n &l0 : &l1 [*l0,*l0]\n: &l2 [*l1,*l1,*l1,*l1]\n3: &3 [*l2,*l2,*l2,*l2,*l2,*l2]\nn:\n  : 2\n  r: i\nh:',
      /alias/i,
    );
  });

  // Found by the long run (seed 20261201, iteration 68960; minimized below): a YAML 1.1 merge key with no map.
  it('a merge key without a map is a plan problem, not an Error', () => {
    expectPlanProblem('%YAML 1.1\n---\n#\n<<:', /merge/i);
  });

  // Found by the plan target (seed 3): a YAML key with escapes became the problem's field raw.
  it('a key spelled with ESC is named escaped in the problem', () => {
    const result = parsePlan('version: 1\n"\\e[2Jx": 1\n');
    assert.ok(result.problems.length > 0);
    for (const problem of result.problems) assert.ok(!hasControlCharacters(`${problem.field}${problem.message}`));
  });

  // Found by the plan target (seed 3, iteration 610; minimized "{}\n: \u007f"): yaml quotes the bad token raw.
  it('a YAML syntax error on a control character quotes it escaped', () => {
    // yaml JSON-quotes the token, which escapes C0 but not DEL or C1: U+009B is CSI, ESC [ in one character.
    const result = parsePlan('{}\n: \u009b2J');
    assert.ok(result.problems.length > 0);
    for (const problem of result.problems) assert.ok(!hasControlCharacters(`${problem.field}${problem.message}`));
  });

  it('ten thousand nested brackets are a plan problem, not a stack overflow', () => {
    expectPlanProblem('['.repeat(10_000), /yaml syntax/);
  });
});

describe('recovery command line and refuge header regressions', () => {
  // Found by the recovery-cmdline target (seed 1, iteration 229131): the value went into the message raw.
  it('a disk value with DEL and a newline is quoted escaped and cut short', async () => {
    await expectRefused('REIMAGE_BOOT_CMDLINE_INVALID', /"reimage\.disk=.*" is neither/, () =>
      parseRecoveryCmdline(`'reimage.refuge=8+144' "reimage.disk=' m=\n 7''7-7BO+\u007f${'9'.repeat(500)}"`),
    );
    try {
      parseRecoveryCmdline('reimage.refuge=8+144 "reimage.disk=x\u001b[2J\u009b"');
      assert.fail('accepted');
    } catch (e) {
      assert.ok(isReimageError(e) && !hasControlCharacters(e.message), String(e));
    }
  });

  it('an unknown key with ESC in the header JSON is named escaped', () => {
    const json = Buffer.from(JSON.stringify({ ...SEED_HEADER, '\u009b2J\u007fx': 1 }));
    const block = Buffer.alloc(REFUGE_HEADER_BYTES);
    block.write('REIMAGE-REFUGE\0\0', 0, 'latin1');
    block.writeUInt32LE(1, 16);
    block.writeUInt32LE(json.length, 20);
    createHash('sha256').update(json).digest().copy(block, 24);
    json.copy(block, 64);
    try {
      decodeRefugeHeader(block);
      assert.fail('accepted');
    } catch (e) {
      assert.ok(isReimageError(e) && e.code === 'REIMAGE_REFUGE_DAMAGED', String(e));
      assert.ok(
        !hasControlCharacters(`${e.message}${String(e.evidence.field)}${String(e.evidence.actual)}`),
        e.message,
      );
    }
  });
});
