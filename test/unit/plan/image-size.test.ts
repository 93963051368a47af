import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describePlan, imagePlanSnippet, imageSizeNote, parsePlan } from '../../../src/plan/index.ts';
import { runReimage } from '../../helpers/run-cli.ts';

const DIGEST = 'ab'.repeat(32);

function planText(image: string): string {
  return [
    'version: 1',
    'disk: /dev/sda',
    `image: { partition: 5, sha256: ${DIGEST}, ${image} }`,
    'retain: { partition: 5, paths: [/etc/machine-id] }',
    'restore: { mounts: [{ partition: 2, at: / }], logs: /log }',
  ].join('\n');
}

function validPlan(image: string): NonNullable<ReturnType<typeof parsePlan>['plan']> {
  const { plan, problems } = parsePlan(planText(image));
  assert.deepEqual(problems, []);
  assert.ok(plan !== undefined);
  return plan;
}

describe('image.size in a plan', () => {
  it('is optional, and taken as a number of bytes when given', () => {
    assert.equal(validPlan('path: /i.img.bz2').image.size, undefined);
    assert.equal(validPlan('path: /i.img.bz2, size: 2147483648').image.size, 2147483648);
  });

  for (const [given, expected] of [
    ['0', 'image.size: expected the decoded size in bytes, more than 0'],
    ['-512', 'image.size: expected the decoded size in bytes, more than 0'],
    ['1.5', 'image.size: expected the decoded size in bytes, a whole number'],
    ['"2G"', 'image.size: expected the decoded size in bytes, a whole number'],
    ['2G', 'image.size: expected the decoded size in bytes, a whole number'],
    // Beyond 2^53 a number is no longer exact: no byte count can be trusted there.
    ['18014398509481984', 'image.size: expected the decoded size in bytes'],
  ] as const) {
    it(`refuses size: ${given}, naming the field`, () => {
      const { plan, problems } = parsePlan(planText(`path: /i.img.bz2, size: ${given}`));
      assert.equal(plan, undefined);
      const messages = problems.map((p) => `${p.field}: ${p.message}`);
      assert.ok(
        messages.some((m) => m.startsWith(expected)),
        `expected "${expected}", got ${JSON.stringify(messages)}`,
      );
    });
  }
});

describe('imageSizeNote (what plan validate says about the decoded size)', () => {
  for (const [name, path] of [
    ['bzip2', '/rhel7.img.bz2'],
    ['gzip', '/images/debian.IMG.GZ'],
  ] as const) {
    it(`says a ${name} image with no size and no block map costs an extra decode, and how to avoid it`, () => {
      const note = imageSizeNote(validPlan(`path: ${path}`));
      assert.match(note, new RegExp(`a ${name} image \\(${path.replaceAll('.', '\\.')}\\) does not record it`));
      assert.match(note, /decode the image once more before writing, only to prove it fits the disk/);
      assert.match(note, /run "reimage image inspect [^"]+" .* as image\.size/s);
    });
  }

  it('says no extra decode is needed when image.size or image.bmap gives the size', () => {
    const sized = imageSizeNote(validPlan('path: /rhel7.img.bz2, size: 4096'));
    assert.match(sized, /^Image size: 4096 bytes decoded \(image\.size\)/);
    assert.doesNotMatch(sized, /once more/);
    const mapped = imageSizeNote(validPlan('path: /rhel7.img.bz2, bmap: /rhel7.bmap'));
    assert.equal(mapped, 'Image size: from the block map.');
  });

  it('does not claim an extra decode for formats that record their size', () => {
    for (const path of ['/new.img.xz', '/new.img.zst', '/new.img']) {
      assert.doesNotMatch(imageSizeNote(validPlan(`path: ${path}`)), /will have to decode/, path);
    }
  });

  it('is part of the plan description', () => {
    const plan = validPlan('path: /rhel7.img.bz2');
    assert.ok(describePlan(plan).includes(imageSizeNote(plan)));
  });

  it('is printed by reimage plan validate for the shipped bzip2 example', () => {
    const result = runReimage(['plan', 'validate', 'examples/seed-kiosk.yaml']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /will have\s+to decode the image once more before writing/);
    assert.match(result.stdout, /reimage image inspect rhel7\.img\.bz2/);
  });
});

describe('imagePlanSnippet', () => {
  it('prints the image section with digest and size filled in and the path left to the operator', () => {
    const snippet = imagePlanSnippet({
      imagePath: '/srv/x/debian.img.gz',
      format: 'gzip',
      sha256: DIGEST,
      sizeBytes: 4096,
    });
    assert.equal(
      snippet,
      [
        'image:',
        '  # partition: 5  # fill in: the partition of the old disk that holds the image',
        '  # path: /debian.img.gz  # fill in: where the image is on that partition',
        `  sha256: ${DIGEST}`,
        '  size: 4096  # decoded bytes of the gzip image',
        '',
      ].join('\n'),
    );
  });
});
