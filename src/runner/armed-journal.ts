import type { FileHandle } from 'node:fs/promises';
import { type JournalEvent, type JournalLocation, type JournalState, nextState, writeJournal } from '../boot/index.ts';

/**
 * The armed run's hold on its journal: every step is first a legal move of the pure state machine
 * (boot/journal-state.ts), then durable in the journal's other slot, and only then the run's new
 * state. An illegal move is a bug of the run, never the disk's fault.
 */
export class ArmedJournal {
  #state: JournalState;
  readonly #disk: FileHandle;
  readonly #location: JournalLocation;

  constructor(disk: FileHandle, location: JournalLocation, state: JournalState) {
    this.#disk = disk;
    this.#location = location;
    this.#state = state;
  }

  get state(): JournalState {
    return this.#state;
  }

  /**
   * Records the event durably (fdatasync) and returns the new state. Its time is the clock's, but
   * never before the last update: a recovery boot's clock may be behind the old OS's (no NTP, a
   * flat RTC battery), and the journal refuses time going backwards.
   */
  async record(event: DistributiveOmit<JournalEvent, 'at'>): Promise<JournalState> {
    const at = new Date(Math.max(Date.now(), Date.parse(this.#state.updatedAt))).toISOString();
    const result = nextState(this.#state, { ...event, at } as JournalEvent);
    if (!result.ok) throw new Error(`armed run: ${result.reason}`);
    await writeJournal(this.#disk, this.#location, result.state);
    this.#state = result.state;
    return this.#state;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
