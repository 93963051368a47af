import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { renderExitCodesDoc } from '../../../scripts/generate-exit-codes-doc.ts';
import { ERROR_CODES, isErrorCode } from '../../../src/core/error-codes.ts';
import { REPO_ROOT } from '../../helpers/run-cli.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every quoted `'REIMAGE_…'` in src/, with where it is; the registry's own keys are not quoted. */
function codeLiterals(): { code: string; where: string }[] {
  const found: { code: string; where: string }[] = [];
  for (const file of sourceFiles(join(REPO_ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/['"`](REIMAGE_[A-Z0-9_]+)['"`]/g)) {
      const code = match[1] ?? '';
      const line = text.slice(0, match.index).split('\n').length;
      found.push({ code, where: `${relative(REPO_ROOT, file)}:${line}` });
    }
  }
  return found;
}

describe('the error registry', () => {
  it('docs/exit-codes.md is what scripts/generate-exit-codes-doc.ts makes from it', () => {
    const committed = readFileSync(join(REPO_ROOT, 'docs/exit-codes.md'), 'utf8');
    assert.equal(
      committed,
      renderExitCodesDoc(),
      'docs/exit-codes.md is stale: run node scripts/generate-exit-codes-doc.ts',
    );
  });

  it('registers every REIMAGE_ code written in src/', () => {
    const unregistered = codeLiterals().filter(({ code }) => !isErrorCode(code));
    assert.deepEqual(unregistered, [], 'register these in src/core/error-codes.ts');
  });

  it('uses every registered code somewhere in src/', () => {
    const used = new Set(codeLiterals().map(({ code }) => code));
    const unused = Object.keys(ERROR_CODES).filter((code) => !used.has(code));
    assert.deepEqual(unused, [], 'remove these from src/core/error-codes.ts or use them');
  });

  it('follows REIMAGE_<AREA>_<WHAT> and gives each code a one-line meaning', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^REIMAGE_[A-Z0-9]+_[A-Z0-9_]+$/);
      assert.ok(info.meaning.length > 0 && !info.meaning.includes('\n'), code);
    }
  });

  it('has no code branch on error message text', () => {
    // Callers branch on `code`; a message is for people and may be reworded at any time.
    const pattern =
      /\.message\s*(===|!==|==|!=)|\.message\.(includes|startsWith|endsWith|match|search|indexOf)\(|\.test\([^)]*\.message\b/;
    const offenders = sourceFiles(join(REPO_ROOT, 'src')).flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, index) =>
          pattern.test(line) ? [`${relative(REPO_ROOT, file)}:${index + 1}: ${line.trim()}`] : [],
        ),
    );
    assert.deepEqual(offenders, []);
  });
});
