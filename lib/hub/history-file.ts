/**
 * The in-process history kept across a graceful restart: saved by shutdown, taken by the next
 * start. It is read once and deleted at once: if that run then crashed, a stale copy must not
 * come back next time and hand out ids the crashed run already used. Without the file, ids
 * start afresh and old ones get `reset`.
 */
import { readFileSync, unlinkSync } from 'node:fs';
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

export function saveHistory(file: string, store: MemoryStore): Promise<void> {
  return writeFileAtomically(file, JSON.stringify(store.save()));
}
