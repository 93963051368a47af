import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  initialJournalState,
  JOURNAL_STAGES,
  type JournalEvent,
  type JournalStage,
  type JournalState,
  journalStateSchema,
  nextState,
} from '../../../src/boot/journal-state.ts';

const T0 = '2026-12-01T22:00:00.000Z';
const T1 = '2026-12-01T22:00:01.000Z';
const DIGEST = 'a'.repeat(64);
const REASON = { code: 'REIMAGE_RETAIN_REQUIRED_MISSING', message: '/etc/machine-id is gone' } as const;

/** Walks the happy path from `armed` to `stage`, so each row starts from a state the run can really reach. */
function reach(stage: JournalStage): JournalState {
  const path: JournalEvent[] = [
    { type: 'capture-started', at: T0 },
    { type: 'bundle-persisted', at: T0, bundleSha256: DIGEST },
    { type: 'write-started', at: T0, totalBytes: 100 },
    { type: 'write-progress', at: T0, durableBytes: 100 },
    { type: 'write-done', at: T0 },
    { type: 'restored', at: T0 },
    { type: 'hooks-started', at: T0 },
    { type: 'hooks-done', at: T0 },
    { type: 'bundle-wiped', at: T0 },
    { type: 'blocks-released', at: T0 },
    { type: 'committed', at: T0 },
  ];
  let state = initialJournalState(T0, { image: DIGEST });
  if (stage === 'refused') return step(state, { type: 'refuse', at: T0, reason: REASON });
  if (stage === 'committed' || stage === 'released') return previousOrder(stage);
  if (stage === 'failed') {
    for (const event of path.slice(0, 4)) state = step(state, event);
    return step(state, { type: 'fail', at: T0, reason: REASON });
  }
  for (const event of path) {
    // `writing` is taken once every byte is durable, so `write-done` is legal from it.
    const complete = state.write === undefined || state.write.durableBytes === state.write.totalBytes;
    if (state.stage === stage && complete) return state;
    state = step(state, event);
  }
  assert.equal(state.stage, stage);
  return state;
}

/**
 * A journal the previous order (commit, then release) wrote: the state machine no longer enters
 * these stages, so they are built as that code left them, and checked against the schema.
 */
function previousOrder(stage: 'committed' | 'released'): JournalState {
  const { bundleSha256: _wiped, ...wiped } = reach('bundle-wiped');
  return journalStateSchema.parse({ ...wiped, stage });
}

function step(state: JournalState, event: JournalEvent): JournalState {
  const result = nextState(state, event);
  assert.ok(result.ok, result.ok ? '' : result.reason);
  return result.state;
}

const EVENTS: Readonly<Record<JournalEvent['type'], JournalEvent>> = {
  'begin-attempt': { type: 'begin-attempt', at: T1 },
  'capture-started': { type: 'capture-started', at: T1 },
  'bundle-persisted': { type: 'bundle-persisted', at: T1, bundleSha256: DIGEST },
  'write-started': { type: 'write-started', at: T1, totalBytes: 100 },
  'write-progress': { type: 'write-progress', at: T1, durableBytes: 100 },
  'write-done': { type: 'write-done', at: T1 },
  restored: { type: 'restored', at: T1 },
  'hooks-started': { type: 'hooks-started', at: T1 },
  'hooks-done': { type: 'hooks-done', at: T1 },
  'bundle-wiped': { type: 'bundle-wiped', at: T1 },
  'blocks-released': { type: 'blocks-released', at: T1 },
  committed: { type: 'committed', at: T1 },
  refuse: { type: 'refuse', at: T1, reason: REASON },
  fail: { type: 'fail', at: T1, reason: REASON },
};

/**
 * The whole legal graph: stage → event → resulting stage. Every pair not listed must be refused,
 * so a new edge cannot slip in without this table changing.
 */
const LEGAL: Readonly<Record<JournalStage, Partial<Record<JournalEvent['type'], JournalStage>>>> = {
  armed: { 'begin-attempt': 'armed', 'capture-started': 'capturing', refuse: 'refused' },
  capturing: {
    'begin-attempt': 'capturing',
    'capture-started': 'capturing',
    'bundle-persisted': 'bundle-persisted',
    refuse: 'refused',
  },
  'bundle-persisted': { 'begin-attempt': 'bundle-persisted', 'write-started': 'writing', refuse: 'refused' },
  writing: { 'begin-attempt': 'writing', 'write-progress': 'writing', 'write-done': 'written', fail: 'failed' },
  written: { 'begin-attempt': 'written', restored: 'restored', fail: 'failed' },
  restored: { 'begin-attempt': 'restored', 'hooks-started': 'hooks-started', fail: 'failed' },
  'hooks-started': { 'begin-attempt': 'hooks-started', 'hooks-done': 'hooks-done', fail: 'failed' },
  'hooks-done': { 'begin-attempt': 'hooks-done', 'bundle-wiped': 'bundle-wiped', fail: 'failed' },
  // The release comes before the commit: the commit is the run's last disk step.
  'bundle-wiped': { 'begin-attempt': 'bundle-wiped', 'blocks-released': 'blocks-released', fail: 'failed' },
  'blocks-released': { 'begin-attempt': 'blocks-released', committed: 'done', fail: 'failed' },
  done: {},
  refused: {},
  // The previous order's journals: a commit without its release still owes the release, which
  // ends the run; `released` was that order's end.
  committed: { 'begin-attempt': 'committed', 'blocks-released': 'done', fail: 'failed' },
  released: {},
  // A retry resumes where it failed (reach('failed') failed in `writing`).
  failed: { 'begin-attempt': 'writing' },
};

describe('journal state: transitions', () => {
  for (const stage of JOURNAL_STAGES) {
    for (const event of Object.values(EVENTS)) {
      const expected = LEGAL[stage][event.type];
      it(`${stage} + ${event.type} → ${expected ?? 'refused'}`, () => {
        const before = reach(stage);
        const result = nextState(before, event);
        if (expected === undefined) {
          assert.equal(result.ok, false);
          if (!result.ok) assert.match(result.reason, new RegExp(`${event.type} is not allowed in stage ${stage}`));
        } else {
          assert.ok(result.ok, result.ok ? '' : result.reason);
          assert.equal(result.state.stage, expected);
          assert.equal(result.state.updatedAt, T1);
          assert.ok(journalStateSchema.safeParse(result.state).success);
        }
      });
    }
  }
});

describe('journal state: what each move records', () => {
  it('counts attempts, and a retry after a failure resumes at the failed stage without the reason', () => {
    const failed = reach('failed');
    assert.equal(failed.failedAt, 'writing');
    assert.deepEqual(failed.reason, REASON);
    const retried = step(failed, EVENTS['begin-attempt']);
    assert.equal(retried.stage, 'writing');
    assert.equal(retried.attempt, failed.attempt + 1);
    assert.equal(retried.reason, undefined);
    assert.equal(retried.failedAt, undefined);
    assert.equal(retried.write?.durableBytes, 100, 'durable progress survives the failure');
  });

  it('keeps durable progress monotonic and within the total', () => {
    const writing = step(reach('bundle-persisted'), { type: 'write-started', at: T1, totalBytes: 1000 });
    const half = step(writing, { type: 'write-progress', at: T1, durableBytes: 500 });
    assert.deepEqual(half.write, { durableBytes: 500, totalBytes: 1000 });
    const back = nextState(half, { type: 'write-progress', at: T1, durableBytes: 499 });
    assert.ok(!back.ok && /never goes back/.test(back.reason));
    const beyond = nextState(half, { type: 'write-progress', at: T1, durableBytes: 1001 });
    assert.ok(!beyond.ok && /beyond the total/.test(beyond.reason));
    const early = nextState(half, { type: 'write-done', at: T1 });
    assert.ok(!early.ok && /not every byte/.test(early.reason));
  });

  it('records the bundle digest when persisted and forgets it when wiped', () => {
    assert.equal(reach('bundle-persisted').bundleSha256, DIGEST);
    assert.equal(reach('hooks-done').bundleSha256, DIGEST);
    assert.equal(reach('bundle-wiped').bundleSha256, undefined);
  });

  it('refuses an event older than the last update (a clock going back is a bug, not a new state)', () => {
    const state = step(reach('armed'), EVENTS['capture-started']);
    const result = nextState(state, { type: 'bundle-persisted', at: T0, bundleSha256: DIGEST });
    assert.ok(!result.ok && /before the last update/.test(result.reason));
  });

  it('refuses a move whose result breaks the schema (a malformed digest)', () => {
    const result = nextState(reach('capturing'), { type: 'bundle-persisted', at: T1, bundleSha256: 'nope' });
    assert.ok(!result.ok && /breaks the schema/.test(result.reason));
  });

  it('releases before it commits: the commit is the last move, and a failed commit resumes at the commit', () => {
    const wiped = reach('bundle-wiped');
    const early = nextState(wiped, EVENTS.committed);
    assert.ok(!early.ok && /may only follow blocks-released/.test(early.reason));
    const released = step(wiped, EVENTS['blocks-released']);
    const failed = step(released, EVENTS.fail);
    assert.equal(failed.failedAt, 'blocks-released');
    const retried = step(failed, { type: 'begin-attempt', at: T1 });
    assert.equal(retried.stage, 'blocks-released');
    assert.equal(step(retried, EVENTS.committed).stage, 'done');
  });

  it("reads the previous order's journals as that code wrote them, and owes a bare commit its release", () => {
    // Literally what the previous order recorded after its commit (stage committed, no release).
    const written = {
      stage: 'committed',
      attempt: 1,
      refugeSha256: { header: DIGEST, image: DIGEST },
      write: { durableBytes: 100, totalBytes: 100 },
      armedAt: T0,
      updatedAt: T0,
    };
    const committed = journalStateSchema.parse(written);
    const resumed = step(committed, { type: 'begin-attempt', at: T1 });
    assert.equal(resumed.stage, 'committed', 'a resume of it is allowed: the release is owed');
    assert.equal(step(resumed, EVENTS['blocks-released']).stage, 'done');
    const again = nextState(committed, EVENTS.committed);
    assert.ok(!again.ok, 'never committed twice');
    const over = journalStateSchema.parse({ ...written, stage: 'released' });
    assert.ok(!nextState(over, { type: 'begin-attempt', at: T1 }).ok, "the previous order's end is final");
  });

  it('never mutates the state it is given', () => {
    const state = reach('writing');
    const copy = structuredClone(state);
    step(state, { type: 'write-progress', at: T1, durableBytes: 100 });
    step(state, EVENTS.fail);
    assert.deepEqual(state, copy);
  });
});
