/**
 * A tiny disk for disk-fault tests: a 64 KiB tmpfs that fills up at will (ENOSPC) and can be
 * remounted read-only (EROFS). Mounting needs root (which also ignores permission bits, so
 * `chmod` cannot make a directory read-only for root; a read-only mount can); `cannotMount`
 * says why it is impossible here, for a test to skip with.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  dir: string;
  /** Takes every free byte; returns the function that gives them back. */
  fill(): () => void;
  /** Remounts read-only (true) or writable again (false). Refused while a file is open for writing. */
  readOnly(on: boolean): void;
}

const mounted = new Set<string>();

export function mountSmallDisk(): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmdirSync(dir);
    throw error;
  }
  mounted.add(dir);
  return {
    dir,
    fill() {
      const filler = join(dir, 'filler');
      const fd = openSync(filler, 'w');
      try {
        for (;;) writeSync(fd, Buffer.alloc(4096));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        closeSync(fd);
      }
      return () => unlinkSync(filler);
    },
    readOnly(on) {
      execFileSync('mount', ['-o', `remount,${on ? 'ro' : 'rw'}`, dir], { stdio: 'pipe' });
    },
  };
}

/**
 * Unmounts every small disk (for `after`). Lazily: a test that failed half way may still hold
 * a file open there, and its mount must not outlive the run.
 */
export function unmountSmallDisks(): void {
  for (const dir of mounted) {
    execFileSync('umount', ['--lazy', dir], { stdio: 'pipe' });
    rmdirSync(dir);
    mounted.delete(dir);
  }
}

/** Why small disks cannot be made here (not root, no tmpfs), or undefined if they can. */
export const cannotMount: string | undefined = (() => {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  try {
    mountSmallDisk();
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs: ${String((error as Error).message).trim()}`;
  } finally {
    unmountSmallDisks();
  }
})();
