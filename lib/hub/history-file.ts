/**
 * The in-process history kept across a graceful restart: saved by shutdown, taken by the next
 * start. It is read once and deleted at once: if that run then crashed, a stale copy must not
 * come back next time and hand out ids the crashed run already used. Without the file, ids
 * start afresh and old ones get `reset`.
 *
 * History is a convenience, not a record (orders are the record): a save the disk refuses is
 * logged, and does not stop the server from shutting down. Clients then get `reset`, as after
 * a crash.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import type { Logger } from '../http/log.ts';
import { writeFileAtomically } from './durable-file.ts';
import type { MemoryStore, SavedHistory } from './memory-store.ts';

export function takeSavedHistory(file: string): SavedHistory | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  unlinkSync(file);
  return JSON.parse(text) as SavedHistory;
}

/** Saves the history for the next run; a failure (a full or read-only disk) is logged, not thrown. */
export async function saveHistory(file: string, store: MemoryStore, logger: Logger): Promise<void> {
  try {
    await writeFileAtomically(file, JSON.stringify(store.save()));
  } catch (error) {
    logger('history.save_failed', { file, error: String(error) });
  }
}
