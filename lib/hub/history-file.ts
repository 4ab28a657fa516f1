/**
 * The in-process history kept across a graceful restart: saved by shutdown, taken by the next
 * start. It is read once and deleted at once: if that run then crashed, a stale copy must not
 * come back next time and hand out ids the crashed run already used. Without the file, ids
 * start afresh and old ones get `reset`.
 *
 * History is a convenience, not a record (orders are the record): a file that will not read
 * back is moved aside for whoever investigates, and a save the disk refuses is logged; neither
 * stops the server from starting or from shutting down. Clients then get `reset`, as after a crash.
 */
import { renameSync, unlinkSync } from 'node:fs';
import type { Logger } from '../http/log.ts';
import { readIfPresent, writeFileAtomically } from './durable-file.ts';
import type { MemoryStore, SavedHistory } from './memory-store.ts';

export function takeSavedHistory(file: string, logger: Logger): SavedHistory | undefined {
  const bytes = readIfPresent(file);
  if (bytes === undefined) return undefined;
  const saved = parseSavedHistory(bytes.toString('utf8'));
  try {
    if (saved === undefined) {
      const movedTo = `${file}.corrupt-${new Date().toISOString().replaceAll(':', '-')}`;
      renameSync(file, movedTo);
      logger('history.corrupt', { file, movedTo });
      return undefined;
    }
    unlinkSync(file);
  } catch (error) {
    // A read-only data directory (a disk remounted after a fault): a file we cannot delete could
    // come back after a crash with ids already used, so it is not used at all. Ids start afresh.
    logger('history.discard_failed', { file, error: String(error) });
    return undefined;
  }
  return saved;
}

/** Saves the history for the next run; a failure (a full or read-only disk) is logged, not thrown. */
export async function saveHistory(file: string, store: MemoryStore, logger: Logger): Promise<void> {
  try {
    await writeFileAtomically(file, JSON.stringify(store.save()));
  } catch (error) {
    logger('history.save_failed', { file, error: String(error) });
  }
}

/** The saved history in `text`, or undefined if it is not what `MemoryStore.save` writes. */
function parseSavedHistory(text: string): SavedHistory | undefined {
  let saved: SavedHistory;
  try {
    saved = JSON.parse(text) as SavedHistory;
  } catch {
    return undefined;
  }
  const isId = (value: unknown) => Number.isSafeInteger(value);
  const whole =
    isId(saved?.firstId) &&
    isId(saved.lastId) &&
    isId(saved.forgottenUpTo) &&
    Array.isArray(saved.channels) &&
    saved.channels.every(
      (channel) =>
        typeof channel?.name === 'string' &&
        isId(channel.evictedUpTo) &&
        Array.isArray(channel.events) &&
        channel.events.every((event) => isId(event?.id) && typeof event.data === 'string'),
    );
  return whole ? saved : undefined;
}
