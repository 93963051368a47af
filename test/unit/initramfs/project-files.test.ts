import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  CLI_ENTRY,
  projectModuleClosure,
  projectModuleClosureIn,
  runtimeImportSpecifiers,
} from '../../../src/initramfs/project-files.ts';

const projectDir = join(import.meta.dirname, '..', '..', '..');

describe('runtimeImportSpecifiers', () => {
  const table: [string, string, string[]][] = [
    ['named', "import { a } from './a.ts';", ['./a.ts']],
    ['default-free namespace', "import * as b from '../b.ts';", ['../b.ts']],
    ['bare', "import './side-effect.ts';", ['./side-effect.ts']],
    ['re-export', "export { c, type D } from './c.ts';", ['./c.ts']],
    ['re-export all', "export * from './all.ts';", ['./all.ts']],
    ['multi-line', "import {\n  e,\n  f,\n} from './ef.ts';", ['./ef.ts']],
    ['type only: erased, loads nothing', "import type { G } from './g.ts';\nexport type { H } from './h.ts';", []],
    ['inline type: still loads the module', "import { type I } from './i.ts';", ['./i.ts']],
    ['dynamic: loaded only when that verb runs', "const m = await import('./demo.ts');", []],
    [
      'in a comment or a string: not an import',
      "// see import x from './x.ts'\nconst s = \"import y from './y.ts'\";",
      [],
    ],
    [
      'packages too (the caller filters)',
      "import { parse } from 'yaml';\nimport { x } from 'node:fs';",
      ['yaml', 'node:fs'],
    ],
  ];
  for (const [name, source, expected] of table) {
    it(name, () => assert.deepEqual(runtimeImportSpecifiers(source), expected));
  }
});

describe('projectModuleClosure', () => {
  it('follows relative imports transitively, once each, and not into packages', async () => {
    const files: Record<string, string> = {
      'src/cli/main.ts': "import { a } from '../a/a.ts';\nimport { parse } from 'yaml';",
      'src/a/a.ts': "export { b } from './b.ts';\nimport { a2 } from '../a/a.ts';",
      'src/a/b.ts': "import type { T } from '../t.ts';\nconst lazy = () => import('../demo/demo.ts');",
      'src/t.ts': '',
      'src/demo/demo.ts': '',
    };
    const read = async (path: string): Promise<string> => {
      const text = files[path];
      if (text === undefined) throw new Error(`not found: ${path}`);
      return text;
    };
    assert.deepEqual(await projectModuleClosure(read), ['src/a/a.ts', 'src/a/b.ts', 'src/cli/main.ts']);
  });

  it('refuses an import that leaves the project', async () => {
    await assert.rejects(
      projectModuleClosure(async () => "import { x } from '../../../outside.ts';", 'src/cli/main.ts'),
      { code: 'REIMAGE_INITRAMFS_PROJECT_INVALID' },
    );
  });
});

// issue 8, section 4: the initramfs carries only what the runner needs. What goes in is what the
// CLI loads; this fails when anything the CLI loads pulls in the demo or the apt installer.
describe('the project files the initramfs carries (this checkout)', () => {
  it('hold the CLI, the runner and the parts it calls', async () => {
    const files = await projectModuleClosureIn(projectDir);
    for (const needed of [CLI_ENTRY, 'src/runner/run-plan.ts', 'src/retain/restore-bundle.ts', 'src/image/index.ts']) {
      assert.ok(files.includes(needed), `${needed} is carried`);
    }
  });

  it('hold no demo code and no apt routine', async () => {
    const files = await projectModuleClosureIn(projectDir);
    const demo = files.filter(
      (path) => path.startsWith('src/demo/') || /(^|\/)demo-(session|vm-session)\.ts$/.test(path),
    );
    assert.deepEqual(demo, [], 'demo modules in the initramfs');
    const apt: string[] = [];
    for (const path of files) {
      // The installer spawns apt-get; a message that merely names it is no installer.
      if (/['"`]apt-get['"`]/.test(await readFile(join(projectDir, path), 'utf8'))) apt.push(path);
    }
    assert.deepEqual(apt, [], 'files that run apt-get, in the initramfs');
  });
});
