/**
 * The long fuzz run: `npm run fuzz -- [--target NAME[,NAME…]] [--seed N] [--seconds N] [--iterations N]`
 * (or FUZZ_TARGET, FUZZ_SEED, FUZZ_SECONDS, FUZZ_ITERATIONS). Each target runs for the time or the
 * iterations given, whichever ends first; a finding prints how to replay it and is saved to --out.
 * `--input FILE --target NAME` runs one saved input. The loop runs in a worker thread so that a
 * parser stuck in a loop is reported (with the iteration to replay) instead of hanging the run.
 * Exit status: 0 nothing found, 1 findings or a hang, 2 bad arguments.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { FuzzTarget } from '../test/fuzz/fuzz-target.ts';
import { FUZZ_TARGETS } from '../test/fuzz/fuzz-targets.ts';
import { classify, type FuzzRunReport, inputLiteral, runFuzz } from '../test/fuzz/run-fuzz.ts';

interface FuzzJob {
  readonly targets: readonly string[];
  readonly seed: number;
  readonly iterations: number;
  readonly seconds: number;
  readonly outDir: string;
  /** [target index, iteration, heartbeat count], written before each iteration for the watchdog. */
  readonly progress: SharedArrayBuffer;
}

/** A parse that makes no progress for this long (FUZZ_HANG_SECONDS, default 60) is reported as a hang. */
const HANG_MS = Number(process.env.FUZZ_HANG_SECONDS ?? 60) * 1000;

type WorkerMessage = { readonly line: string } | { readonly findings: number };

/**
 * Lines from the worker go to the main thread as messages: a worker's own stdout reaches the
 * terminal only when its event loop turns, which a target that never waits on I/O does not do.
 */
function print(line: string): void {
  if (isMainThread) process.stdout.write(`${line}\n`);
  else parentPort?.postMessage({ line } satisfies WorkerMessage);
}

/** Printable inline: short inputs as a JS string literal (for a regression test), long ones by file. */
function inline(input: Buffer): string {
  return input.length <= 600 ? inputLiteral(input) : `(${input.length} bytes, see the .min.bin file)`;
}

function reportRun(report: FuzzRunReport, seconds: number, outDir: string): void {
  print(
    `${report.target}: ${report.iterations} iterations in ${seconds.toFixed(1)} s (seed ${report.seed}), ` +
      `${report.outcomes.size} distinct outcomes, corpus ${report.corpusSize}, ${report.findings.length} finding(s)`,
  );
  const top = [...report.outcomes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  for (const [signature, count] of top) print(`    ${String(count).padStart(8)}  ${signature}`);
  for (const [warning, count] of report.warnings) print(`  WARNING emitted for ${count} input(s): ${warning}`);
  for (const finding of report.findings) {
    const file = join(outDir, `${finding.target}-seed${finding.seed}-iter${finding.iteration}.bin`);
    writeFileSync(file, finding.input);
    writeFileSync(file.replace(/\.bin$/, '.min.bin'), finding.minimized);
    print(`  FINDING ${finding.problem}`);
    print(`    seen ${finding.count} time(s), first at iteration ${finding.iteration}`);
    print(
      `    replay: npm run fuzz -- --target ${finding.target} --seed ${finding.seed} --iterations ${finding.iteration + 1}`,
    );
    print(`    or:     npm run fuzz -- --target ${finding.target} --input ${file}`);
    print(`    minimized (latin1): ${inline(finding.minimized)}`);
  }
}

async function runJob(job: FuzzJob): Promise<number> {
  const progress = new Int32Array(job.progress);
  let findings = 0;
  for (const [index, name] of job.targets.entries()) {
    const make = FUZZ_TARGETS[name];
    if (make === undefined) throw new Error(`unknown target ${name}`);
    const target = make();
    const startedMs = Date.now();
    try {
      const report = await runFuzz(target, {
        seed: job.seed,
        iterations: job.iterations,
        minimize: true,
        shouldStop: () => Date.now() - startedMs > job.seconds * 1000,
        onHeartbeat: (iteration) => {
          Atomics.store(progress, 0, index);
          Atomics.store(progress, 1, iteration);
          Atomics.add(progress, 2, 1);
        },
      });
      reportRun(report, (Date.now() - startedMs) / 1000, job.outDir);
      findings += report.findings.length;
    } finally {
      await target.close?.();
    }
  }
  return findings;
}

async function replayInput(target: FuzzTarget, file: string): Promise<number> {
  const input = readFileSync(file);
  try {
    const { signature, problem } = await classify(target, input);
    print(problem === undefined ? `contract kept: ${signature}` : `FINDING ${problem}`);
    return problem === undefined ? 0 : 1;
  } finally {
    await target.close?.();
  }
}

function numberOption(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new Error(`--${name} wants a whole number, got "${value}"`);
  return parsed;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      seed: { type: 'string' },
      iterations: { type: 'string' },
      seconds: { type: 'string' },
      input: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const targets = (values.target ?? process.env.FUZZ_TARGET ?? Object.keys(FUZZ_TARGETS).join(',')).split(',');
  const unknown = targets.filter((name) => FUZZ_TARGETS[name] === undefined);
  if (unknown.length > 0) {
    print(`unknown target(s) ${unknown.join(', ')}; known: ${Object.keys(FUZZ_TARGETS).join(', ')}`);
    return 2;
  }
  if (values.input !== undefined) {
    const make = FUZZ_TARGETS[targets[0] ?? ''];
    if (make === undefined || targets.length !== 1) {
      print('--input needs exactly one --target');
      return 2;
    }
    return replayInput(make(), values.input);
  }
  const outDir = values.out ?? join(tmpdir(), 'reimage-fuzz');
  mkdirSync(outDir, { recursive: true });
  const job: FuzzJob = {
    targets,
    seed: numberOption(values.seed ?? process.env.FUZZ_SEED, 1, 'seed'),
    iterations: numberOption(values.iterations ?? process.env.FUZZ_ITERATIONS, Number.MAX_SAFE_INTEGER, 'iterations'),
    // A replay (--iterations alone) runs to its iteration however long it takes.
    seconds: numberOption(
      values.seconds ?? process.env.FUZZ_SECONDS,
      values.iterations === undefined && process.env.FUZZ_ITERATIONS === undefined ? 60 : Number.MAX_SAFE_INTEGER,
      'seconds',
    ),
    outDir,
    progress: new SharedArrayBuffer(12),
  };
  const budget = job.seconds === Number.MAX_SAFE_INTEGER ? `${job.iterations} iterations` : `up to ${job.seconds} s`;
  print(`fuzzing ${targets.join(', ')}: seed ${job.seed}, ${budget} per target; findings go to ${outDir}`);
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const progress = new Int32Array(job.progress);
  return new Promise<number>((resolve) => {
    let lastCount = -1;
    let lastChangeMs = Date.now();
    const watchdog = setInterval(() => {
      const count = Atomics.load(progress, 2);
      if (count !== lastCount) {
        lastCount = count;
        lastChangeMs = Date.now();
        return;
      }
      if (Date.now() - lastChangeMs < HANG_MS) return;
      const name = targets[Atomics.load(progress, 0)] ?? '?';
      const iteration = Atomics.load(progress, 1);
      print(`HANG ${name}: no progress for ${HANG_MS / 1000} s at iteration ${iteration}`);
      print(`    replay: npm run fuzz -- --target ${name} --seed ${job.seed} --iterations ${iteration + 1}`);
      clearInterval(watchdog);
      void worker.terminate().then(() => resolve(1));
    }, 1000);
    worker.on('message', (message: WorkerMessage) => {
      if ('line' in message) {
        print(message.line);
        return;
      }
      clearInterval(watchdog);
      resolve(message.findings > 0 ? 1 : 0);
    });
    worker.on('error', (error) => {
      clearInterval(watchdog);
      print(`the fuzz worker failed: ${error.stack ?? error.message}`);
      resolve(1);
    });
  });
}

if (isMainThread) {
  process.exitCode = await main();
} else {
  const findings = await runJob(workerData as FuzzJob);
  parentPort?.postMessage({ findings } satisfies WorkerMessage);
}
