import { isReimageError } from '../../src/core/reimage-error.ts';
import type { FuzzTarget } from './fuzz-target.ts';
import { guardAllocations } from './guard-allocations.ts';
import { mutateOnce } from './mutate-bytes.ts';
import { SeededRandom } from './seeded-random.ts';

/** A contract violation: the input, a smaller input that shows the same problem, and how to replay it. */
export interface FuzzFinding {
  readonly target: string;
  readonly seed: number;
  readonly iteration: number;
  readonly input: Buffer;
  readonly minimized: Buffer;
  /** What went wrong, e.g. `TypeError: Cannot read properties of null`. */
  readonly problem: string;
  /** The problem with numbers and quoted text removed: findings with one signature are one bug. */
  readonly signature: string;
  /** How many inputs showed this signature. */
  count: number;
}

export interface FuzzRunReport {
  readonly target: string;
  readonly seed: number;
  readonly iterations: number;
  readonly findings: readonly FuzzFinding[];
  /** Distinct outcomes seen (accepted, or each kind of refusal): a rough measure of how deep the run got. */
  readonly outcomes: ReadonlyMap<string, number>;
  readonly corpusSize: number;
  /** process warnings the parser emitted, by text shape, with how many inputs caused each. */
  readonly warnings: ReadonlyMap<string, number>;
}

export interface FuzzRunOptions {
  readonly seed: number;
  /** Stop after this many iterations… */
  readonly iterations: number;
  /** …or when this returns true (the script's time budget), whichever comes first. */
  readonly shouldStop?: () => boolean;
  /** Called before each iteration and while a finding is minimized (the script's hang watchdog counts the calls). */
  readonly onHeartbeat?: (iteration: number) => void;
  /** Shrink each new finding's input (costs up to a few thousand parses per finding). */
  readonly minimize?: boolean;
}

/** Inputs grow by duplication and splicing; past this they only get slower, not more interesting. */
const MAX_INPUT_BYTES = 256 * 1024;
/** Kept outcomes-that-were-new, mutated again later: a cheap stand-in for coverage feedback. */
const MAX_CORPUS = 256;

interface Classified {
  /** Accepted, or the refusal's code and message shape. */
  readonly signature: string;
  /** Set when the parser broke its contract. */
  readonly problem?: string;
  /** process warnings the parser emitted (printed on stderr of the CLI: noise for the operator). */
  readonly warnings?: readonly string[];
}

const CODE_PATTERN = /^REIMAGE_[A-Z0-9]+(?:_[A-Z0-9]+)+$/;
/**
 * Messages reach an operator's terminal: input bytes copied raw into one (ESC above all) can
 * rewrite what the terminal shows. Newlines and tabs are the message's own layout.
 */
export function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x0a && code !== 0x09) || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

/**
 * An input as a JS string literal (latin1, one char per byte) to paste into a regression test:
 * JSON.stringify escapes C0 but leaves DEL and C1 raw, which a terminal would swallow or obey.
 */
export function inputLiteral(input: Buffer): string {
  return textLiteral(input.toString('latin1'));
}

/** Text as a JSON string literal with DEL and C1 escaped as well, safe to print. */
export function textLiteral(text: string): string {
  let literal = '';
  for (const char of JSON.stringify(text)) {
    const code = char.charCodeAt(0);
    literal += code >= 0x7f && code <= 0x9f ? `\\u${code.toString(16).padStart(4, '0')}` : char;
  }
  return literal;
}

/** Numbers and quoted input stripped, so that one kind of refusal or crash is one signature. */
function shape(message: string): string {
  return (
    (message.split('\n')[0] ?? '')
      // A library's detail in parentheses often quotes the input around the error: keep only its start.
      .replace(/\(([^()]{0,32}).*\)/s, (_, start: string) => `(${start.replaceAll('"', '')}…)`)
      .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
      .replace(/'[^']*'/g, "'…'")
      .replace(/[0-9]+/g, 'N')
      .slice(0, 120)
  );
}

/** Where in our code an exception came from: the first stack frame under src/. */
function ourFrame(error: Error): string {
  const frame = error.stack?.split('\n').find((line) => line.includes('/src/')) ?? '';
  return /\/(src\/[^:)]+:\d+)/.exec(frame)?.[1] ?? '';
}

function describe(error: unknown): { problem: string; signature: string } {
  if (error instanceof Error) {
    const frame = ourFrame(error);
    const where = frame === '' ? '' : ` at ${frame}`;
    const firstLine = error.message.split('\n')[0] ?? '';
    // One bug, one signature: the exception's kind, the start of its message and the line that threw.
    return {
      problem: `${error.name}: ${firstLine}${where}`,
      signature: `${error.name}: ${shape(firstLine).slice(0, 40)}${where}`,
    };
  }
  return { problem: `non-Error thrown: ${String(error)}`, signature: 'non-Error thrown' };
}

/** The allocation limit for one input: the readers' fixed windows plus a few copies of the input. */
export function allocationLimitBytes(inputBytes: number): number {
  return 4 * 1024 * 1024 + 8 * inputBytes;
}

/** Runs one input through the target and checks the contract. */
export async function classify(target: FuzzTarget, input: Buffer): Promise<Classified> {
  const warnings: string[] = [];
  const { emitWarning } = process;
  process.emitWarning = (warning: string | Error) => {
    warnings.push(typeof warning === 'string' ? warning : warning.message);
  };
  try {
    const classified = await classifyQuietly(target, input);
    return warnings.length === 0 ? classified : { ...classified, warnings };
  } finally {
    process.emitWarning = emitWarning;
  }
}

async function classifyQuietly(target: FuzzTarget, input: Buffer): Promise<Classified> {
  const limitBytes = allocationLimitBytes(input.length);
  const { result, allocations } = await guardAllocations(limitBytes, () => target.parse(input));
  if (allocations.largestBytes > limitBytes) {
    const problem = `tried to allocate ${allocations.largestBytes} bytes for a ${input.length}-byte input`;
    return { signature: `allocation: ${shape(problem)}`, problem };
  }
  if (result.status === 'fulfilled') {
    const { invalid, outcome } = result.value;
    if (invalid === undefined) return { signature: outcome === undefined ? 'accepted' : `accepted: ${shape(outcome)}` };
    const problem = `accepted an invalid result: ${invalid}`;
    return { signature: shape(problem), problem };
  }
  const error: unknown = result.reason;
  if (isReimageError(error)) {
    if (!CODE_PATTERN.test(error.code)) {
      const problem = `ReimageError with a malformed code "${error.code}"`;
      return { signature: shape(problem), problem };
    }
    // Our own words must be clear; quoted input and a library's detail in parentheses may say anything.
    const ownWords = error.message.replace(/\(.*\)/s, '').replace(/"(?:[^"\\]|\\.)*"/g, '');
    if (error.message.trim().length < 20 || /\b(?:undefined|NaN)\b|\[object Object\]/.test(ownWords)) {
      const problem = `${error.code} with an unclear message: ${error.message.split('\n')[0]}`;
      return { signature: shape(problem), problem };
    }
    if (hasControlCharacters(error.message)) {
      const firstLine = error.message.split('\n')[0] ?? '';
      const problem = `${error.code} message carries raw control characters from the input: ${textLiteral(firstLine)}`;
      // The message up to its first quote or parenthesis: where the input's text begins.
      const ownStart = [...(firstLine.split(/["(]/)[0] ?? '')].filter((char) => !hasControlCharacters(char)).join('');
      return { signature: `control characters: ${error.code}: ${shape(ownStart).slice(0, 40)}`, problem };
    }
    return { signature: `${error.code}: ${shape(error.message)}` };
  }
  return describe(error);
}

/**
 * Removes chunks of the input while the same problem remains (halves, quarters, … single bytes),
 * so a regression test can carry the input inline. Bounded: a finding never stalls the run.
 */
export async function minimizeInput(
  target: FuzzTarget,
  input: Buffer,
  signature: string,
  onHeartbeat?: () => void,
): Promise<Buffer> {
  let best = input;
  let budget = 3000;
  const sameProblem = async (candidate: Buffer): Promise<boolean> => {
    budget -= 1;
    onHeartbeat?.();
    const { problem, signature: candidateSignature } = await classify(target, candidate);
    return problem !== undefined && candidateSignature === signature;
  };
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1 && budget > 0; chunk = chunk >> 1) {
    let at = 0;
    while (at < best.length && budget > 0) {
      const candidate = Buffer.concat([best.subarray(0, at), best.subarray(at + chunk)]);
      if (await sameProblem(candidate)) best = candidate;
      else at += chunk;
    }
  }
  return best;
}

/** The seeded mutation loop for one target. Deterministic: the same seed and code give the same run. */
export async function runFuzz(target: FuzzTarget, options: FuzzRunOptions): Promise<FuzzRunReport> {
  const random = new SeededRandom(options.seed);
  const seeds = await target.seeds();
  const corpus: Buffer[] = [...seeds];
  const outcomes = new Map<string, number>();
  const warnings = new Map<string, number>();
  const findings = new Map<string, FuzzFinding>();
  for (const seedInput of seeds) {
    const { signature, problem } = await classify(target, seedInput);
    if (problem !== undefined || !signature.startsWith('accepted')) {
      throw new Error(`fuzz target ${target.name}: a seed input is not accepted (${problem ?? signature})`);
    }
  }
  const context = { random, dictionary: target.dictionary, corpus };
  let iteration = 0;
  for (; iteration < options.iterations; iteration += 1) {
    if (options.shouldStop?.() === true) break;
    options.onHeartbeat?.(iteration);
    let input = random.chance(0.3) ? random.pick(seeds) : random.pick(corpus);
    const steps = 1 + random.below(4);
    for (let step = 0; step < steps; step += 1) {
      input = random.chance(0.5) ? target.mutateStructure(input, random) : mutateOnce(input, context);
    }
    if (input.length > MAX_INPUT_BYTES) input = input.subarray(0, MAX_INPUT_BYTES);
    const { signature, problem, warnings: emitted } = await classify(target, input);
    for (const warning of emitted ?? []) warnings.set(shape(warning), (warnings.get(shape(warning)) ?? 0) + 1);
    const seen = outcomes.get(signature) ?? 0;
    outcomes.set(signature, seen + 1);
    if (problem !== undefined) {
      const known = findings.get(signature);
      if (known !== undefined) known.count += 1;
      else {
        const heartbeat = (): void => options.onHeartbeat?.(iteration);
        const minimized = options.minimize === true ? await minimizeInput(target, input, signature, heartbeat) : input;
        findings.set(signature, {
          target: target.name,
          seed: options.seed,
          iteration,
          input,
          minimized,
          problem,
          signature,
          count: 1,
        });
      }
    } else if (seen === 0 || (signature.startsWith('accepted') && random.chance(0.05))) {
      // A new kind of outcome means the input reached code the others did not: keep it to mutate further.
      if (corpus.length >= MAX_CORPUS) corpus.splice(seeds.length + random.below(corpus.length - seeds.length), 1);
      corpus.push(input);
    }
  }
  return {
    target: target.name,
    seed: options.seed,
    iterations: iteration,
    findings: [...findings.values()],
    outcomes,
    corpusSize: corpus.length,
    warnings,
  };
}
