import type { Env } from './config.ts';

/** What the CLI writes to: a process stream, or a string collector in tests. */
export interface OutStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface CliIo {
  stdout: OutStream;
  stderr: OutStream;
  stdin: AsyncIterable<string | Uint8Array> & { isTTY?: boolean };
  env: Env;
  /** Ends long-running commands (`events -f`, the wait of `scale`); SIGINT/SIGTERM in the real process. */
  signal?: AbortSignal;
}

/** Exit codes of API.md: 0 ok, 1 failed, 2 usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** An expected failure: printed as one `machete: …` line, then the process exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
export const usageError = (message: string) => new CliError(message, EXIT.usage);

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Aligned columns, headers in capitals, no borders (kubectl/nomad style). The last column is not padded. */
export function formatTable(headers: string[], rows: (string | number | boolean | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(cell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('   ').trimEnd()).join('\n');
}

export function printTable(io: CliIo, headers: string[], rows: (string | number | boolean | null | undefined)[][], empty = 'nothing to show'): void {
  if (!rows.length) {
    io.stderr.write(`${empty}\n`);
    return;
  }
  io.stdout.write(`${formatTable(headers, rows)}\n`);
}

/** Control characters from the server never reach the terminal raw. */
export const clean = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');

function cell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined || v === '') return '-';
  return clean(String(v));
}

/** "12s ago", "3m ago", … for a timestamp; "-" when absent. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(s)) return '-';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** `k=v` pairs, or `k-` to remove a key (when `allowRemove`). */
export function parseLabels(pairs: string[], allowRemove = false): { set: Record<string, string>; remove: string[] } {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const p of pairs) {
    if (allowRemove && /^[^=]+-$/.test(p)) {
      remove.push(p.slice(0, -1));
      continue;
    }
    const eq = p.indexOf('=');
    if (eq <= 0) throw usageError(`label "${p.slice(0, 80)}" must be key=value${allowRemove ? ' (or key- to remove it)' : ''}`);
    set[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return { set, remove };
}

export const labelsText = (labels: Record<string, string> | null | undefined): string =>
  Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** Reads a whole input stream as UTF-8. */
export async function readAll(input: AsyncIterable<string | Uint8Array>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

/** A timer the signal cuts short (rejecting with its reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
