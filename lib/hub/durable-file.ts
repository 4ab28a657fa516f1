/**
 * Writing a file so that a crash can never leave it torn or empty: write a temporary file
 * beside it, flush it to disk, then rename it over the real one. A rename within a directory
 * is atomic, so readers (and the next run) see the old version or the new one, nothing between.
 */
import { open, rename } from 'node:fs/promises';

export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  const file = await open(temporary, 'w');
  try {
    await file.writeFile(text);
    // Without fsync the rename can reach the disk before the data does, and a power cut
    // would leave an empty file under the real name.
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
}
