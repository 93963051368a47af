import { ReimageError } from '../core/reimage-error.ts';

/** One line of a retention list: an absolute path or glob, and whether it may be missing. */
export interface RetainRequest {
  readonly pattern: string;
  readonly optional: boolean;
}

/**
 * A plan's `retain.paths` as requests: a string is required, `{ path, optional }` says. The plan
 * and the retention list are two ways of writing the same requests.
 */
export function requestsFromPlanPaths(
  paths: readonly (string | { readonly path: string; readonly optional: boolean })[],
): RetainRequest[] {
  return paths.map((entry) =>
    typeof entry === 'string' ? { pattern: entry, optional: false } : { pattern: entry.path, optional: entry.optional },
  );
}

/** One path component of a pattern: a literal name, a single-component glob, or `**`. */
export type PatternComponent =
  | { readonly kind: 'literal'; readonly name: string }
  | { readonly kind: 'glob'; readonly regex: RegExp; readonly source: string }
  | { readonly kind: 'globstar' };

function listError(file: string, lineNumber: number, what: string, line: string): ReimageError {
  return new ReimageError('REIMAGE_RETAIN_LIST_INVALID', `${file}:${lineNumber}: ${what}. Fix that line of the list.`, {
    evidence: { file, line: lineNumber, actual: line },
  });
}

/**
 * Parses a retention list: one absolute path or glob per line, `#` starts a comment line, blank
 * lines are ignored, a leading `?` marks the path optional. Leading and trailing blanks are
 * trimmed; a name that needs them, or a tab or newline, is written with `\ `, `\t`, `\n`.
 */
export function parseRetainList(text: string, file: string): RetainRequest[] {
  const requests: RetainRequest[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const raw = (lines[index] ?? '').replace(/\r$/, '');
    let line = trimUnescaped(raw);
    if (line === '' || line.startsWith('#')) continue;
    let optional = false;
    if (line.startsWith('?')) {
      optional = true;
      line = trimUnescaped(line.slice(1));
    }
    const lineNumber = index + 1;
    if (!line.startsWith('/')) throw listError(file, lineNumber, `"${line}" is not an absolute path`, raw);
    if (line.includes('\0')) throw listError(file, lineNumber, 'the path contains a NUL byte', raw);
    try {
      const components = parsePattern(line);
      if (components.length === 0) throw new Error('the whole root "/" cannot be retained');
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      throw listError(file, lineNumber, reason, raw);
    }
    requests.push({ pattern: line, optional });
  }
  return requests;
}

function trimUnescaped(text: string): string {
  let start = 0;
  while (start < text.length && (text[start] === ' ' || text[start] === '\t')) start += 1;
  let end = text.length;
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t') && text[end - 2] !== '\\') end -= 1;
  return text.slice(start, end);
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r' };

/** Splits an absolute pattern into components; throws plain Errors that the caller wraps. */
export function parsePattern(pattern: string): PatternComponent[] {
  const components: PatternComponent[] = [];
  for (const rawComponent of pattern.split('/')) {
    if (rawComponent === '') continue;
    if (rawComponent === '**') {
      components.push({ kind: 'globstar' });
      continue;
    }
    let literal = '';
    let regex = '';
    let isGlob = false;
    for (let i = 0; i < rawComponent.length; i += 1) {
      const char = rawComponent[i] ?? '';
      if (char === '\\') {
        const next = rawComponent[i + 1];
        if (next === undefined) throw new Error('a trailing "\\" escapes nothing');
        const value = ESCAPES[next] ?? next;
        literal += value;
        regex += escapeRegex(value);
        i += 1;
      } else if (char === '*') {
        isGlob = true;
        regex += '[^/]*';
      } else if (char === '?') {
        isGlob = true;
        regex += '[^/]';
      } else if (char === '[') {
        const close = rawComponent.indexOf(']', i + 2);
        if (close === -1) throw new Error('a "[" has no matching "]"');
        let body = rawComponent.slice(i + 1, close);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        regex += `[${body.replace(/\\/g, '\\\\')}]`;
        isGlob = true;
        i = close;
      } else {
        literal += char;
        regex += escapeRegex(char);
      }
    }
    if (!isGlob) {
      if (literal === '.' || literal === '..') throw new Error('"." and ".." are not allowed in a retained path');
      components.push({ kind: 'literal', name: literal });
    } else {
      // As in the shell, a wildcard does not match a leading dot: `*` does not pick up `.` or `..`.
      const anchored =
        rawComponent.startsWith('.') || rawComponent.startsWith('\\.') ? `^${regex}$` : `^(?!\\.)${regex}$`;
      components.push({ kind: 'glob', regex: new RegExp(anchored, 's'), source: rawComponent });
    }
  }
  return components;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
