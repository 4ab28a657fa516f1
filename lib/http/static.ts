/**
 * Serves the files under `public/` and nothing else.
 *
 * Path traversal is the classic hole in hand-written static servers: `/../server.ts`,
 * `/%2e%2e/server.ts`, `/..%2fserver.ts`, `//etc/passwd`, `/C:\...`. Rather than trying to
 * normalise such paths into something safe, any path with a `.` or `..` segment, an empty
 * segment, a backslash or a NUL is refused outright, and the resolved file must still lie
 * inside the root as a last check.
 *
 * Two more things are never served, because nobody puts them in `public/` meaning to publish
 * them: dotfiles (`.env`, `.git/`, an editor's `.swp`), and anything reached through a symbolic
 * link, which could point anywhere on the machine. Both answer 404, like a missing file.
 */
import { constants } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HttpError } from './json.ts';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** Turns a raw request path into the segments of a file path, or refuses it with 400. */
export function safeSegments(rawPath: string): string[] {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new HttpError(400, 'Path is not valid percent-encoding');
  }
  if (!decoded.startsWith('/') || decoded.includes('\\') || decoded.includes('\0')) {
    throw new HttpError(400, 'Path is not allowed');
  }
  if (decoded === '/') return ['index.html'];
  const segments = decoded.slice(1).split('/');
  if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new HttpError(400, 'Path is not allowed');
  }
  return segments;
}

/**
 * The path of a request target, as sent. Usually the target is the path itself, but HTTP/1.1
 * servers must also take the absolute form a client speaking to a proxy sends
 * (`GET http://host/page.html`, RFC 9112 §3.2.2): its scheme and authority are dropped.
 */
export function rawPathOf(target: string): string {
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  const path = (absolute === null ? target : target.slice(absolute[0].length)).split('?')[0]!;
  return absolute !== null && path === '' ? '/' : path;
}

/** Opens a regular file that is reached without any symbolic link, with its size; undefined when there is none. */
async function openPlainFile(file: string): Promise<{ handle: FileHandle; size: number } | undefined> {
  let handle: FileHandle;
  try {
    // realpath resolves every link on the way: a path that changes had one. O_NOFOLLOW also
    // refuses a link swapped in at the last component between the check and the open.
    if ((await realpath(file)) !== file) return undefined;
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ENAMETOOLONG: a segment longer than a file name may be (255 bytes) names no file either.
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENAMETOOLONG') return undefined;
    throw error;
  }
  const info = await handle.stat();
  if (info.isFile()) return { handle, size: info.size };
  await handle.close();
  return undefined;
}

/** Answers GET/HEAD for a file under `root`; 404 when there is no such file. */
export async function serveStatic(root: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // The raw path, before any URL normalisation could quietly resolve `..` for us.
  const rawPath = rawPathOf(req.url ?? '/');
  // The root itself may be a link (a deploy's `current/`); only what lies below it may not.
  const base = await realpath(resolve(root));
  const segments = safeSegments(rawPath);
  const file = join(base, ...segments);
  if (!file.startsWith(base + sep)) throw new HttpError(400, 'Path is not allowed');

  const opened = segments.some((segment) => segment.startsWith('.')) ? undefined : await openPlainFile(file);
  if (opened === undefined) throw new HttpError(404, `No such file: ${rawPath}`);
  const { handle, size } = opened;

  res.writeHead(200, {
    'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': size,
    // Revalidate every time: this is a teaching server, edits should show on reload.
    'Cache-Control': 'no-cache',
    // Never let a browser guess a type: a guessed text/html would run as a page.
    'X-Content-Type-Options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    await handle.close();
    return;
  }
  // The stream closes the file when it ends, or fails.
  await pipeline(handle.createReadStream(), res);
}
