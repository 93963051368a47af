import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';

/**
 * The one argument parser of the `reimage` command. Each verb (or sub-verb) declares its
 * options and positionals once, as data; the parser, the usage line and the help text all come
 * from that declaration, so they cannot disagree. Every mistake is reported in one format,
 * `<command>: <what is wrong>`, with the usage of that command only (REIMAGE_CLI_USAGE, exit 2).
 */
/**
 * `file`: anything but a directory (a regular file, a block device); `directory`: a directory;
 * `new-file`: a file the command will write, whose directory must exist (so a long capture or
 * build does not end on a path it could never write).
 */
export type PathKind = 'file' | 'directory' | 'new-file';

export interface OptionSpec {
  /** Without the dashes: `plan` for `--plan`. */
  readonly name: string;
  /** The value's name in usage (`FILE`, `HEX`); absent for a flag that takes no value. */
  readonly value?: string;
  readonly help: string;
  readonly required?: boolean;
  /** The only values accepted (`--owners by-name|by-id`). */
  readonly choices?: readonly string[];
  /** A path the operator names that must already exist, and be of this kind (checked after the syntax). */
  readonly mustExist?: PathKind;
  /** What is wrong with a value (`takes a whole number of bytes`), or undefined if it is fine. */
  readonly check?: (value: string) => string | undefined;
}

export interface PositionalSpec {
  /** Upper case, as usage shows it: `IMAGE`, `TARGET`. */
  readonly name: string;
  readonly help: string;
  readonly mustExist?: PathKind;
}

export interface CommandSpec {
  /** `write`, or `retain capture` for a sub-verb. */
  readonly command: string;
  /** One line for the verb's list. */
  readonly summary: string;
  /** Paragraphs shown by `reimage help COMMAND` between usage and the options. */
  readonly description: string;
  readonly positionals: readonly PositionalSpec[];
  readonly options: readonly OptionSpec[];
  readonly examples: readonly string[];
  /**
   * Whether this command can change a target (a disk, or the root it restores into). One that
   * cannot (plan validate, inspect, list) reports "nothing was changed" even for a bug.
   */
  readonly changesTarget: boolean;
}

export interface ParsedArguments {
  /** The value of `--name`, or undefined when it was not given. */
  value(name: string): string | undefined;
  /** The value of a `required` option or of a positional (the parser has checked it is there). */
  required(name: string): string;
  flag(name: string): boolean;
}

function optionUsage(option: OptionSpec): string {
  const text =
    option.value === undefined ? `--${option.name}` : `--${option.name} ${option.choices?.join('|') ?? option.value}`;
  return option.required === true ? text : `[${text}]`;
}

/** `reimage write IMAGE TARGET [--sha256 HEX] …`, made from the spec. */
export function usageLine(spec: CommandSpec): string {
  return ['reimage', spec.command, ...spec.positionals.map((p) => p.name), ...spec.options.map(optionUsage)].join(' ');
}

/** The full text of `reimage help COMMAND`: usage, description, arguments, options, examples. */
export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = [
    ...spec.positionals.map((p): [string, string] => [p.name, p.help]),
    ...spec.options.map((o): [string, string] => [
      o.value === undefined ? `--${o.name}` : `--${o.name} ${o.value}`,
      o.choices === undefined ? o.help : `${o.help} (${o.choices.join(', ')})`,
    ]),
  ];
  const width = Math.max(0, ...rows.map(([left]) => left.length));
  const table = rows.map(([left, right]) => {
    const [first = '', ...rest] = right.split('\n');
    return [`  ${left.padEnd(width)}  ${first}`, ...rest.map((line) => `  ${''.padEnd(width)}  ${line}`)].join('\n');
  });
  return [
    `Usage: ${usageLine(spec)}`,
    '',
    spec.description,
    ...(table.length > 0 ? ['', 'Arguments and options:', ...table] : []),
    '',
    'Example:',
    ...spec.examples.map((example) => `  ${example}`),
  ].join('\n');
}

/** Why `path` is not a `kind` the command can use, or undefined when it is. */
function pathProblem(path: string, kind: PathKind): string | undefined {
  if (kind === 'new-file') {
    const dir = dirname(resolve(path));
    const problem = pathProblem(dir, 'directory');
    return problem === undefined ? undefined : `is to go into ${dir}, which ${problem}`;
  }
  let stats: ReturnType<typeof statSync>;
  try {
    stats = statSync(path, { throwIfNoEntry: false });
  } catch (e) {
    // EACCES, ENAMETOOLONG, ELOOP…: the operator's path, not a bug.
    return `cannot be reached (${isSystemError(e) ? e.code : String(e)})`;
  }
  if (stats === undefined) return 'does not exist';
  if (kind === 'directory' && !stats.isDirectory()) return 'is not a directory';
  if (kind === 'file' && stats.isDirectory()) return 'is a directory, not a file';
  return undefined;
}

export function usageError(spec: CommandSpec, what: string): ReimageError {
  return new ReimageError('REIMAGE_CLI_USAGE', `${spec.command}: ${what}`, {
    evidence: { command: spec.command, usage: usageLine(spec) },
  });
}

/**
 * Parses `argv` (the words after the command) against `spec`. Accepts `--name value`,
 * `--name=value` and `--` before positionals that start with a dash. Syntax first (unknown
 * option, missing value, bad choice, missing or extra positional), then the paths that must
 * exist, so a typo in an option is reported before a path that is missing because of it.
 */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[]): ParsedArguments {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  const positionals: string[] = [];
  let onlyPositionals = false;
  for (let index = 0; index < argv.length; index += 1) {
    const word = argv[index] ?? '';
    if (onlyPositionals || !word.startsWith('-') || word === '-') {
      positionals.push(word);
      continue;
    }
    if (word === '--') {
      onlyPositionals = true;
      continue;
    }
    const equals = word.indexOf('=');
    const name = word.slice(2, equals === -1 ? undefined : equals);
    const option = word.startsWith('--') ? spec.options.find((candidate) => candidate.name === name) : undefined;
    if (option === undefined) throw usageError(spec, `unknown option ${equals === -1 ? word : word.slice(0, equals)}`);
    if (option.value === undefined) {
      if (equals !== -1) throw usageError(spec, `--${name} takes no value`);
      flags.add(name);
      continue;
    }
    let value: string | undefined;
    if (equals !== -1) {
      value = word.slice(equals + 1);
    } else {
      value = argv[index + 1];
      index += 1;
    }
    if (value === undefined || value === '' || (equals === -1 && value.startsWith('--'))) {
      throw usageError(spec, `--${name} needs a value (${option.value})`);
    }
    if (option.choices !== undefined && !option.choices.includes(value)) {
      throw usageError(spec, `--${name} must be ${option.choices.join(' or ')}, not "${value}"`);
    }
    const complaint = option.check?.(value);
    if (complaint !== undefined) throw usageError(spec, `--${name} ${complaint}, not "${value}"`);
    values.set(name, value);
  }
  for (const option of spec.options) {
    if (option.required === true && !values.has(option.name)) {
      throw usageError(spec, `--${option.name} ${option.value ?? ''} is missing`.replace('  ', ' '));
    }
  }
  for (const [index, positional] of spec.positionals.entries()) {
    const given = positionals[index];
    if (given === undefined || given === '') throw usageError(spec, `${positional.name} is missing`);
    values.set(positional.name, given);
  }
  if (positionals.length > spec.positionals.length) {
    throw usageError(spec, `unexpected argument "${positionals[spec.positionals.length]}"`);
  }
  const mustExist = [
    ...spec.positionals.map((p) => ({ key: p.name, shown: p.name, kind: p.mustExist })),
    ...spec.options.map((o) => ({ key: o.name, shown: `--${o.name}`, kind: o.mustExist })),
  ];
  for (const { key, shown, kind } of mustExist) {
    const path = values.get(key);
    if (path === undefined || kind === undefined) continue;
    const problem = pathProblem(path, kind);
    if (problem !== undefined) {
      throw new ReimageError(
        'REIMAGE_CLI_FILE_NOT_FOUND',
        `${spec.command}: ${shown} "${path}" ${problem}. Check the path.`,
        {
          evidence: { command: spec.command, path },
        },
      );
    }
  }
  return {
    value: (name) => values.get(name),
    required(name) {
      const value = values.get(name);
      // Only reachable by a verb asking for a name its spec does not mark required: a bug.
      if (value === undefined) throw new Error(`${spec.command}: "${name}" is not a required argument in its spec`);
      return value;
    },
    flag: (name) => flags.has(name),
  };
}
