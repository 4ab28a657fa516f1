/**
 * One JSON line per event on stderr: easy to read in a terminal, easy to grep, and easy for a
 * log collector to parse. Fields carry what is needed to debug (route, status, reason), never
 * request bodies or secrets.
 */
export type Logger = (event: string, fields?: Record<string, unknown>) => void;

export const stderrLogger: Logger = (event, fields = {}) => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), event, ...fields }) + '\n');
};

export const silentLogger: Logger = () => {};
