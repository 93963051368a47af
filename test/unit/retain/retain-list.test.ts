import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePattern, parseRetainList } from '../../../src/retain/retain-list.ts';

describe('parseRetainList', () => {
  it('reads paths, globs, comments, blanks and optional lines', () => {
    const text =
      '# keys\n/etc/ssh/ssh_host_*\n\n  /etc/machine-id  \n?/etc/kiosk/token\n? /opt/app\r\n/etc/key dir/tls key.pem\n';
    assert.deepEqual(parseRetainList(text, 'list'), [
      { pattern: '/etc/ssh/ssh_host_*', optional: false },
      { pattern: '/etc/machine-id', optional: false },
      { pattern: '/etc/kiosk/token', optional: true },
      { pattern: '/opt/app', optional: true },
      { pattern: '/etc/key dir/tls key.pem', optional: false },
    ]);
  });

  const errors: Array<[string, string, RegExp]> = [
    ['a relative path', '/etc/ok\netc/relative\n', /^list:2: "etc\/relative" is not an absolute path/],
    ['".." in a path', '/etc/../shadow\n', /^list:1: "\." and "\.\." are not allowed/],
    ['the whole root', '/\n', /^list:1: the whole root/],
    ['an unclosed bracket', '# c\n\n/etc/[ab\n', /^list:3: a "\[" has no matching "\]"/],
    ['a bare "?"', '?\n', /^list:1: "" is not an absolute path/],
  ];
  for (const [name, text, message] of errors) {
    it(`names file and line for ${name}`, () => {
      assert.throws(
        () => parseRetainList(text, 'list'),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.match(e.message, message);
          assert.equal((e as { code?: string }).code, 'REIMAGE_RETAIN_LIST_INVALID');
          return true;
        },
      );
    });
  }
});

describe('parsePattern', () => {
  const matches = (pattern: string, name: string): boolean => {
    const component = parsePattern(pattern).at(-1);
    if (component?.kind === 'literal') return component.name === name;
    if (component?.kind === 'glob') return component.regex.test(name);
    return false;
  };
  const cases: Array<[string, string, boolean]> = [
    ['/etc/ssh/ssh_host_*', 'ssh_host_rsa_key', true],
    ['/etc/ssh/ssh_host_*', 'sshd_config', false],
    ['/etc/*', '.hidden', false],
    ['/etc/.*', '.hidden', true],
    ['/etc/key?', 'key1', true],
    ['/etc/key[12]', 'key3', false],
    ['/etc/key[!12]', 'key3', true],
    ['/etc/a\\*b', 'a*b', true],
    ['/etc/a\\*b', 'axb', false],
    ['/etc/tab\\there', 'tab\there', true],
    ['/etc/new\\nline', 'new\nline', true],
    ['/etc/key dir', 'key dir', true],
    ['/etc/ké*', 'kéy', true],
  ];
  for (const [pattern, name, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => {
      assert.equal(matches(pattern, name), expected);
    });
  }
  it('splits into literal, glob and globstar components', () => {
    assert.deepEqual(
      parsePattern('/etc/**/x*').map((c) => c.kind),
      ['literal', 'globstar', 'glob'],
    );
  });
});
