import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type CommandSpec, helpText, parseCommandLine, usageLine } from '../../../src/cli/command-line.ts';
import { VERBS } from '../../../src/cli/verbs/index.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';
import { REPO_ROOT } from '../../helpers/run-cli.ts';

const spec: CommandSpec = {
  command: 'thing do',
  summary: 's',
  description: 'd',
  positionals: [
    { name: 'IMAGE', help: 'i' },
    { name: 'TARGET', help: 't' },
  ],
  options: [
    { name: 'sha256', value: 'HEX', help: 'h' },
    { name: 'plan', value: 'PLAN', help: 'p', required: true },
    { name: 'owners', value: 'MODE', help: 'o', choices: ['by-name', 'by-id'] },
    { name: 'verify', help: 'v' },
  ],
  examples: ['reimage thing do a b --plan p'],
  changesTarget: false,
};

function usageMessage(argv: string[]): string {
  try {
    parseCommandLine(spec, argv);
  } catch (e) {
    assert.ok(e instanceof ReimageError);
    assert.equal(e.code, 'REIMAGE_CLI_USAGE');
    assert.equal(e.evidence.usage, usageLine(spec));
    return e.message;
  }
  assert.fail(`${JSON.stringify(argv)} was accepted`);
}

describe('the argument parser', () => {
  it('reads positionals, values (--x v and --x=v) and flags', () => {
    const args = parseCommandLine(spec, [
      'a',
      '--sha256=abc',
      'b',
      '--plan',
      'p.yaml',
      '--verify',
      '--owners',
      'by-id',
    ]);
    assert.equal(args.required('IMAGE'), 'a');
    assert.equal(args.required('TARGET'), 'b');
    assert.equal(args.value('sha256'), 'abc');
    assert.equal(args.required('plan'), 'p.yaml');
    assert.equal(args.value('owners'), 'by-id');
    assert.equal(args.flag('verify'), true);
  });

  it('takes words after -- as positionals', () => {
    const args = parseCommandLine(spec, ['--plan', 'p', '--', '-a', '--b']);
    assert.equal(args.required('IMAGE'), '-a');
    assert.equal(args.required('TARGET'), '--b');
  });

  const mistakes: [string[], string][] = [
    [['a', 'b', '--plan', 'p', '--frob'], 'thing do: unknown option --frob'],
    [['a', 'b', '--plan', 'p', '--frob=1'], 'thing do: unknown option --frob'],
    [['a', 'b', '--plan', 'p', '-x'], 'thing do: unknown option -x'],
    [['a', 'b', '--plan'], 'thing do: --plan needs a value (PLAN)'],
    [['a', 'b', '--plan', '--verify'], 'thing do: --plan needs a value (PLAN)'],
    [['a', 'b', '--plan='], 'thing do: --plan needs a value (PLAN)'],
    [['a', 'b'], 'thing do: --plan PLAN is missing'],
    [['--plan', 'p'], 'thing do: IMAGE is missing'],
    [['a', '--plan', 'p'], 'thing do: TARGET is missing'],
    [['a', 'b', 'c', '--plan', 'p'], 'thing do: unexpected argument "c"'],
    [['a', 'b', '--plan', 'p', '--verify=yes'], 'thing do: --verify takes no value'],
    [['a', 'b', '--plan', 'p', '--owners', 'root'], 'thing do: --owners must be by-name or by-id, not "root"'],
  ];
  for (const [argv, message] of mistakes) {
    it(`names the mistake in ${JSON.stringify(argv)}`, () => assert.equal(usageMessage(argv), message));
  }

  it('makes the usage line from the spec', () => {
    assert.equal(
      usageLine(spec),
      'reimage thing do IMAGE TARGET [--sha256 HEX] --plan PLAN [--owners by-name|by-id] [--verify]',
    );
  });
});

describe('every command of reimage', () => {
  const commands = VERBS.flatMap((verb) => verb.commands.map((command) => ({ verb, command })));

  it('is named after its verb', () => {
    for (const { verb, command } of commands) {
      assert.ok(
        command.spec.command === verb.name || command.spec.command.startsWith(`${verb.name} `),
        command.spec.command,
      );
    }
  });

  it('has help made from its spec: usage, every option and positional, an example', () => {
    for (const { verb, command } of commands) {
      const text = helpText(command.spec);
      assert.ok(text.startsWith(`Usage: ${usageLine(command.spec)}\n`), command.spec.command);
      for (const option of command.spec.options) {
        assert.match(usageLine(command.spec), new RegExp(`--${option.name}\\b`), `${command.spec.command} usage`);
        assert.match(text, new RegExp(`^  --${option.name}\\b`, 'm'), `${command.spec.command} help`);
      }
      for (const positional of command.spec.positionals)
        assert.match(text, new RegExp(`^  ${positional.name}\\b`, 'm'));
      assert.match(text, /\nExample:\n {2}\S/);
      assert.ok(verb.help.includes(text), `${verb.name} help includes ${command.spec.command}`);
    }
  });

  it('has examples that its own parser accepts (up to paths that must exist)', () => {
    for (const { command } of commands) {
      for (const example of command.spec.examples) {
        const words = example.replace(/^(sudo )?(\.\/bin\/)?reimage /, '').split(/\s+/);
        const argv = words.slice(command.spec.command.split(' ').length);
        try {
          parseCommandLine(command.spec, argv);
        } catch (e) {
          assert.ok(e instanceof ReimageError && e.code === 'REIMAGE_CLI_FILE_NOT_FOUND', `${example}: ${String(e)}`);
        }
      }
    }
  });
});

describe('paths the parser checks', () => {
  const pathSpec: CommandSpec = {
    ...spec,
    positionals: [],
    options: [
      { name: 'in', value: 'FILE', help: 'i', mustExist: 'file' },
      { name: 'out', value: 'FILE', help: 'o', mustExist: 'new-file' },
    ],
  };
  function pathMessage(argv: string[]): string {
    try {
      parseCommandLine(pathSpec, argv);
    } catch (e) {
      assert.ok(e instanceof ReimageError, String(e));
      assert.equal(e.code, 'REIMAGE_CLI_FILE_NOT_FOUND');
      return e.message;
    }
    assert.fail(`${JSON.stringify(argv)} was accepted`);
  }

  it('accepts an output file whose directory exists, and refuses one whose directory does not', () => {
    parseCommandLine(pathSpec, ['--out', join(tmpdir(), 'reimage-new-file.tar')]);
    assert.match(
      pathMessage(['--out', '/nonexistent-dir/x.tar']),
      /--out "\/nonexistent-dir\/x\.tar" is to go into \/nonexistent-dir, which does not exist/,
    );
  });

  it('names a path it cannot reach (not a bug with a stack trace)', () => {
    // ENAMETOOLONG from stat: one path component longer than any filesystem allows.
    assert.match(pathMessage(['--in', `/${'x'.repeat(300)}`]), /cannot be reached \(ENAMETOOLONG\)/);
  });
});

describe('the README', () => {
  it("shows each command's usage exactly as the parser makes it", () => {
    const readme = readFileSync(`${REPO_ROOT}/README.md`, 'utf8');
    for (const verb of VERBS) {
      for (const command of verb.commands) {
        const row = `| \`${usageLine(command.spec).replaceAll('|', '\\|')}\` |`;
        assert.ok(readme.includes(row), `README.md verb table lacks ${row}`);
      }
    }
  });
});
