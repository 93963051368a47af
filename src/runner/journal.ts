import { appendFileSync, readFileSync } from 'node:fs';

export type StageName = 'capture' | 'write' | 'restore';

export interface JournalRecord {
  readonly time: string;
  readonly stage: StageName;
  readonly event: 'start' | 'done' | 'failed';
  readonly attempt: number;
  readonly detail?: string;
}

/**
 * The runner's journal: one JSON line per stage transition, written *before* the stage acts
 * (as Mender does), so whoever reads it after a failure knows how far the run got. It lives in
 * RAM next to the log now; with power-loss safety it moves into the refuge on disk.
 */
export class Journal {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  record(stage: StageName, event: JournalRecord['event'], attempt: number, detail?: string): void {
    const record: JournalRecord = { time: new Date().toISOString(), stage, event, attempt, detail };
    appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }

  read(): JournalRecord[] {
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as JournalRecord);
  }
}
