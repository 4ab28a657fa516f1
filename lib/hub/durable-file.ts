/**
 * Writing a file so that a crash can never leave it torn or empty: write a temporary file
 * beside it, flush it to disk, then rename it over the real one. A rename within a directory
 * is atomic, so readers (and the next run) see the old version or the new one, nothing between.
 * Last, the directory is flushed too: the new name lives there, and a caller may act on the
 * write at once (the order store empties its log), which is safe only once the rename is on disk.
 * Reading one back is the other half: no file at all is a first start, not an error.
 */
import { readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  // If this fails (a read-only directory, say), there is no temporary file to clean up.
  const file = await open(temporary, 'w');
  try {
    try {
      await file.writeFile(text);
      // Without fsync the rename can reach the disk before the data does, and a power cut
      // would leave an empty file under the real name.
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    // A full disk fails half way through: remove the partial file, or every failed attempt
    // would leave one behind, holding the very space that ran out.
    await unlink(temporary).catch((cleanupError: unknown) => {
      throw new AggregateError(
        [error, cleanupError],
        `Cannot write ${path} (${String(error)}), nor remove ${temporary} (${String(cleanupError)})`,
      );
    });
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Flushes a directory's entries (names, renames) to disk, as fsync does a file's content. */
export async function syncDirectory(path: string): Promise<void> {
  // Node cannot flush a directory on Windows; there the rename is left to the file system.
  if (process.platform === 'win32') return;
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** A file's bytes, or undefined when there is no such file (a first start); any other failure throws. */
export function readIfPresent(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
