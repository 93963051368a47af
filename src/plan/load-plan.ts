import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { escapeControls } from '../core/quote-input.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { type Plan, planSchema } from './plan-schema.ts';

/** One thing wrong with a plan: where (field path, and line:column when known) and what. */
export interface PlanProblem {
  readonly field: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}

/** `restore.mounts[1].at` from zod's ['restore', 'mounts', 1, 'at']. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? escapeControls(String(part)) : `.${escapeControls(String(part))}`;
  }
  return text === '' ? '(top level)' : text;
}

function describeIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: [...issue.path, key],
      message: 'unknown key (check its spelling against the plan reference in docs/plan.md)',
    }));
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return [{ path: issue.path, message: `is required (expected ${issue.expected})` }];
  }
  return [{ path: issue.path, message: issue.message }];
}

/** Line and column (1-based) of the YAML node at a field path, to point the operator at it. */
function locate(
  document: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  path: readonly PropertyKey[],
): { line: number; column: number } | undefined {
  let node: unknown = document.contents;
  let range: [number, number, number] | undefined;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => (item.key as { value?: unknown } | null)?.value === (typeof part === 'symbol' ? undefined : part),
      );
      if (pair === undefined) break;
      range = (pair.key as { range?: [number, number, number] } | null)?.range ?? range;
      node = pair.value;
    } else if (isSeq(node) && typeof part === 'number') {
      node = node.items[part];
    } else {
      break;
    }
    range = (node as { range?: [number, number, number] } | null)?.range ?? range;
  }
  if (range === undefined) return undefined;
  const position = lineCounter.linePos(range[0]);
  return { line: position.line, column: position.col };
}

/**
 * A digest made only of decimal digits (or starting with them and an `e`) is a number to YAML,
 * which would lose its leading zeros and precision. The digest is text: take it as written.
 */
function keepDigestAsWritten(document: ReturnType<typeof parseDocument>, text: string): void {
  const node = document.getIn(['image', 'sha256'], true);
  if (isScalar(node) && typeof node.value === 'number' && node.range !== undefined && node.range !== null) {
    node.value = text.slice(node.range[0], node.range[1]).trim();
  }
}

/**
 * Parses and validates plan text. Returns the plan or every problem found, each naming its
 * field; YAML syntax errors come with line and column.
 */
export function parsePlan(text: string): { plan: Plan; problems: [] } | { plan: undefined; problems: PlanProblem[] } {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  if (document.errors.length > 0) {
    return {
      plan: undefined,
      problems: document.errors.map((error) => {
        const position = lineCounter.linePos(error.pos[0]);
        return {
          field: '(yaml syntax)',
          message: escapeControls(error.message.split('\n')[0] ?? error.message),
          line: position.line,
          column: position.col,
        };
      }),
    };
  }
  keepDigestAsWritten(document, text);
  let value: unknown;
  try {
    value = document.toJS();
  } catch (error) {
    // yaml resolves aliases and merge keys only here: an unset anchor, an alias bomb or a merge of a non-map throws.
    const message = escapeControls(error instanceof Error ? error.message : String(error));
    return { plan: undefined, problems: [{ field: '(yaml syntax)', message }] };
  }
  const result = planSchema.safeParse(value, { reportInput: true });
  if (result.success) return { plan: result.data, problems: [] };
  const problems: PlanProblem[] = [];
  for (const issue of result.error.issues) {
    for (const { path, message } of describeIssue(issue)) {
      problems.push({
        field: formatFieldPath(path),
        message: escapeControls(message),
        ...locate(document, lineCounter, path),
      });
    }
  }
  return { plan: undefined, problems };
}

export function formatPlanProblem(file: string, problem: PlanProblem): string {
  const where = problem.line === undefined ? file : `${file}:${problem.line}:${problem.column}`;
  return `${where}: ${problem.field}: ${problem.message}`;
}

/** Reads and validates a plan file; any problem is a REIMAGE_PLAN_INVALID listing them all. */
export async function loadPlanFile(file: string): Promise<Plan> {
  return (await readPlanFile(file)).plan;
}

/** The plan and the very text it was validated from (what an initramfs bakes in). */
export async function readPlanFile(file: string): Promise<{ plan: Plan; text: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = isSystemError(error) ? error.code : String(error);
    throw new ReimageError(
      'REIMAGE_PLAN_UNREADABLE',
      `Cannot read the plan file ${file} (${reason}). Check the path.`,
      {
        evidence: { file },
        cause: error,
      },
    );
  }
  const { plan, problems } = parsePlan(text);
  if (plan !== undefined) return { plan, text };
  throw new ReimageError(
    'REIMAGE_PLAN_INVALID',
    `The plan ${file} is not valid: fix the fields below and run "reimage plan validate ${file}" again.`,
    {
      evidence: { file, problemCount: problems.length },
      details: problems.map((problem) => formatPlanProblem(file, problem)),
    },
  );
}
