import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ExitCode } from '../../../src/core/exit-codes.ts';
import {
  ARMED_RETRY_CAP_SECONDS,
  armedRetryDelaySeconds,
  DISPATCH_BEGIN,
  DISPATCH_END,
  initScript,
  shellQuote,
} from '../../../src/initramfs/init-script.ts';

const RUNNER = 'run --plan /etc/reimage/plan.yaml';
const STAYS = ['sleep 3600', 'stays'];
const RUN_LOG = '/run/reimage/console.log';

/**
 * Runs the dispatch part of the generated /init under busybox sh, with the header's baked-in
 * variables, and with functions standing in for the runner (exiting with each of `statuses` in
 * turn; when they run out, the shell ends with "out of statuses"), reboot, poweroff, sync, sleep
 * and tail, each recording its call. `sleep 3600` (the endless wait that keeps PID 1 alive)
 * records "stays" and ends the shell. `armed` is what /init learns from the kernel command line.
 * The shell runs as nobody when the test runs as root, so that even a stub that failed to shadow
 * the real reboot could not reboot.
 */
function dispatchRun(
  finish: 'reboot' | 'poweroff',
  statuses: readonly number[],
  armed = false,
): { calls: string[]; said: string[] } {
  const script = initScript({ disk: '/dev/vda', finish, modules: ['virtio_blk'] });
  const begin = script.indexOf(DISPATCH_BEGIN);
  const end = script.indexOf(DISPATCH_END);
  assert.ok(begin > 0 && end > begin, 'the script has a dispatch part');
  const header = script
    .split('\n')
    .filter((line) => /^(DISK|FINISH|PLAN|LOG|REIMAGE|RETRY_FIRST_S|RETRY_CAP_S)=/.test(line));
  assert.equal(header.length, 7, 'DISK, FINISH, PLAN, LOG, REIMAGE and the retry delays are baked in');
  const harness = [
    ...header,
    `ARMED=${armed ? 1 : 0}`,
    'call() { echo "$*" >&2; }',
    'say() { echo "$*"; }',
    'reimage_stub() { call "runner $*"; set -- $STUB_STATUSES; if [ $# -eq 0 ]; then call "out of statuses"; exit 0; fi; s=$1; shift; STUB_STATUSES="$*"; return "$s"; }',
    'reboot() { call "reboot $*"; }',
    'poweroff() { call "poweroff $*"; }',
    'sync() { call sync; }',
    'tail() { call "tail $*"; }',
    'sleep() { call "sleep $*"; if [ "$1" = 3600 ]; then call stays; exit 0; fi; }',
    'REIMAGE=reimage_stub',
    script.slice(begin, end),
    // After the script's own definition: the real one unmounts and detaches on this host.
    'clear_armed_leftovers() { call "clear leftovers"; }',
    'run_plan',
    'call "run_plan returned"',
  ].join('\n');
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const run = spawnSync('busybox', ['sh', '-c', harness], {
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', STUB_STATUSES: statuses.join(' ') },
    ...asNobody,
    // A guard against a stub that fails to end the endless wait, not a timing assertion.
    timeout: 20_000,
  });
  assert.equal(run.error, undefined, `busybox sh ran (install busybox-static): ${run.error?.message}`);
  assert.equal(run.status, 0, `the dispatch ran to its end: ${run.stderr}`);
  const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');
  return { calls: lines(run.stderr), said: lines(run.stdout) };
}

function dispatch(finish: 'reboot' | 'poweroff', status: number): { calls: string[]; said: string[] } {
  return dispatchRun(finish, [status]);
}

describe('/init dispatch (busybox sh, stub commands)', () => {
  it("does the plan's finish on success: reboot, or poweroff", () => {
    assert.deepEqual(dispatch('reboot', ExitCode.ok).calls, [
      `runner ${RUNNER}`,
      'sync',
      'sleep 1',
      'reboot -f',
      ...STAYS,
    ]);
    assert.deepEqual(dispatch('poweroff', ExitCode.ok).calls, [
      `runner ${RUNNER}`,
      'sync',
      'sleep 1',
      'poweroff -f',
      ...STAYS,
    ]);
  });

  it('reboots into the untouched old system on 2 and 3, whatever the finish, saying why', () => {
    const said: string[] = [];
    for (const status of [ExitCode.invalidInput, ExitCode.refusedUntouched]) {
      for (const finish of ['reboot', 'poweroff'] as const) {
        const result = dispatch(finish, status);
        assert.deepEqual(
          result.calls,
          [`runner ${RUNNER}`, 'sync', 'sleep 2', 'reboot -f', ...STAYS],
          `exit ${status}`,
        );
        assert.ok(result.said.includes('Nothing on the disk was changed; rebooting into the old system.'));
        said.push(result.said[1] ?? '');
      }
    }
    assert.match(said[0] ?? '', /invalid \(exit 2\)/);
    assert.match(said[2] ?? '', /stopped before the disk was changed \(exit 3\)/);
  });

  it('never reboots nor powers off on 1, 4, 5, 130 or an unknown code, and says what each means', () => {
    const expected: [number, RegExp][] = [
      [ExitCode.failedTouched, /failed after the disk started to change.*the disk is incomplete/],
      [ExitCode.verifyMismatch, /Verification found differences.*read back.*restored state/],
      [ExitCode.interrupted, /interrupted \(exit 130\)/],
      [ExitCode.internal, /internal error \(exit 1\); whether the disk was changed is not known/],
      [137, /without a known exit code \(exit 137/],
      [127, /without a known exit code \(exit 127/],
    ];
    const messages = new Set<string>();
    for (const [status, meaning] of expected) {
      for (const finish of ['reboot', 'poweroff'] as const) {
        const { calls, said } = dispatch(finish, status);
        assert.deepEqual(calls, [`runner ${RUNNER}`, `tail -n 40 ${RUN_LOG}`, 'sync', ...STAYS], `exit ${status}`);
        assert.equal(said[0], `reimage run exited with ${status}`);
        assert.match(said[1] ?? '', meaning, `exit ${status}`);
        assert.ok(said.includes('The machine stays here; it will not reboot.'), `exit ${status}`);
        // Told apart by words, not only by the number in them.
        messages.add((said[1] ?? '').replace(/\(exit [0-9]+/, '(exit N'));
      }
    }
    assert.equal(messages.size, 5, 'one message per meaning (127 and 137 share "unknown")');
  });
});

const ARMED_RUNNER = 'run --armed --disk /dev/vda';
/** What /init does after a failed armed run: the console log's tail shown, flushed, then the wait. */
const waitsThenRetries = (delaySeconds: number): string[] => [
  `tail -n 40 ${RUN_LOG}`,
  'sync',
  `sleep ${delaySeconds}`,
  'clear leftovers',
  `runner ${ARMED_RUNNER}`,
];

describe('/init dispatch of the armed run (busybox sh, stub commands)', () => {
  it('after a touched failure: the log, the shells, a retry after 1, then 2 min; never a reboot until it succeeds', () => {
    const { calls, said } = dispatchRun(
      'poweroff',
      [ExitCode.failedTouched, ExitCode.failedTouched, ExitCode.ok],
      true,
    );
    assert.deepEqual(calls, [
      `runner ${ARMED_RUNNER}`,
      ...waitsThenRetries(60),
      ...waitsThenRetries(120),
      'sync',
      'sleep 1',
      'poweroff -f',
      ...STAYS,
    ]);
    const retries = said.filter((line) => line.startsWith('Retry '));
    assert.equal(retries.length, 2);
    assert.match(
      retries[0] ?? '',
      /^Retry 1 of the armed run in 60 s \(at \d\d:\d\d:\d\d UTC by this machine's clock\)/,
    );
    assert.match(retries[1] ?? '', /^Retry 2 of the armed run in 120 s /);
    assert.ok(said.some((line) => /does not reboot/.test(line)));
    assert.ok(said.some((line) => /Diagnosis shells are open on tty2 and tty3/.test(line)));
  });

  it('retries on every code but 0 and 3 (2, 1, 5, 130, 137 too: a reboot would only come back here)', () => {
    const failures = [ExitCode.invalidInput, ExitCode.internal, ExitCode.verifyMismatch, ExitCode.interrupted, 137];
    const { calls } = dispatchRun('reboot', failures, true);
    assert.ok(!calls.some((call) => /^(reboot|poweroff)/.test(call)), calls.join('\n'));
    assert.deepEqual(
      calls.filter((call) => call.startsWith('sleep')),
      ['sleep 60', 'sleep 120', 'sleep 240', 'sleep 480', 'sleep 960'],
    );
    assert.equal(calls.at(-1), 'out of statuses');
  });

  it('reboots into the old OS on 3: the armed run refused and gave the old boot code back', () => {
    const { calls, said } = dispatchRun('poweroff', [ExitCode.refusedUntouched], true);
    assert.deepEqual(calls, [`runner ${ARMED_RUNNER}`, 'sync', 'sleep 2', 'reboot -f', ...STAYS]);
    assert.ok(said.some((line) => /refused before the disk was changed \(exit 3\)/.test(line)));
  });
});

describe('armedRetryDelaySeconds (the wait before /init retries the armed run)', () => {
  it('is 1 min, doubling, capped at 1 h', () => {
    const table: [number, number][] = [
      [1, 60],
      [2, 120],
      [3, 240],
      [6, 1920],
      [7, ARMED_RETRY_CAP_SECONDS],
      [8, 3600],
      [1000, 3600],
    ];
    for (const [retry, seconds] of table) assert.equal(armedRetryDelaySeconds(retry), seconds, `retry ${retry}`);
    assert.equal(armedRetryDelaySeconds(3, { firstSeconds: 7, capSeconds: 20 }), 20);
  });

  it("matches /init's armed_retry_delay_s, computed by busybox sh", () => {
    const script = initScript({ disk: '/dev/vda', finish: 'reboot', modules: [] });
    const fn = /\narmed_retry_delay_s\(\) \{\n[\s\S]*?\n\}\n/.exec(script)?.[0];
    assert.ok(fn, 'the script defines armed_retry_delay_s');
    for (const [first, cap] of [
      [60, 3600],
      [7, 20],
      [5, 5],
    ] as const) {
      const retries = Array.from({ length: 14 }, (_, i) => i + 1);
      const run: SpawnSyncReturns<string> = spawnSync(
        'busybox',
        [
          'sh',
          '-c',
          `RETRY_FIRST_S=${first} RETRY_CAP_S=${cap}\n${fn}\nfor n in ${retries.join(' ')}; do armed_retry_delay_s $n; done`,
        ],
        { encoding: 'utf8' },
      );
      assert.deepEqual(
        run.stdout.trim().split('\n').map(Number),
        retries.map((retry) => armedRetryDelaySeconds(retry, { firstSeconds: first, capSeconds: cap })),
        `first ${first}, cap ${cap}`,
      );
    }
  });
});

describe('initScript', () => {
  const script = initScript({ disk: "/dev/disk with 'quote'", finish: 'poweroff', modules: ['virtio_blk', 'ext4'] });

  it('is valid sh', () => {
    const checked = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(checked.status, 0, `sh -n failed (install the Debian package dash): ${checked.stderr}`);
  });

  it('bakes the disk, finish and modules in, safely quoted', () => {
    assert.ok(script.includes(`DISK=${shellQuote("/dev/disk with 'quote'")}`));
    assert.ok(script.includes("FINISH='poweroff'"));
    assert.ok(script.includes("MODULES='virtio_blk ext4'"));
  });

  it('runs the plan once the disk is there, and never exits', () => {
    assert.match(script, /\nsay "disk \$DISK is here; running the plan \$PLAN"\nrun_plan\n$/);
    assert.doesNotMatch(script, /^\s*exit\b/m);
  });

  it('quotes shell values', () => {
    const echoed = spawnSync('sh', ['-c', `printf %s ${shellQuote("a'b $c `d`")}`], { encoding: 'utf8' });
    assert.equal(echoed.stdout, "a'b $c `d`");
  });
});
