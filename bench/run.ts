// `npm run bench`: speed is measured, not asserted. Each benchmark runs the baseline and ours on
// the same input in the same run and prints the ratio. Needs root (loop devices, mounts).
import { runRetainBench } from './retain-bench.ts';
import { runWriteBench } from './write-bench.ts';

const only = process.argv.slice(2);
const benches: [string, () => Promise<string>][] = [
  ['write', runWriteBench],
  ['retain', runRetainBench],
];
for (const [name, bench] of benches) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stdout.write(`\n== ${name} ==\n`);
  process.stdout.write(`${await bench()}\n`);
}
