import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../apps/cli/src/main.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliRunOptions {
  /** Added to (and overriding) the runner's base environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  stdin?: string;
  signal?: AbortSignal;
  /** Pretend stdout is a terminal. */
  tty?: boolean;
  /** Sees stdout as it is written (for following commands). */
  onStdout?: (all: string) => void;
}

/** Runs the `machete` CLI in this process with captured streams, a given environment and no real stdin. */
export async function machete(argv: string[], base: Record<string, string | undefined>, opts: CliRunOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const env = { ...base, ...opts.env };
  const code = await runCli(argv, {
    stdout: {
      isTTY: !!opts.tty,
      write: (s: string) => {
        stdout += s;
        opts.onStdout?.(stdout);
        return true;
      },
    },
    stderr: { isTTY: false, write: (s: string) => ((stderr += s), true) },
    stdin: (async function* () {
      if (opts.stdin !== undefined) yield opts.stdin;
    })(),
    env,
    signal: opts.signal ?? new AbortController().signal,
  });
  return { code, stdout, stderr };
}

/** A fresh HOME for a CLI under test (its config lands in HOME/.config/machete). */
export function tempHome(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'machete-cli-home-'));
}
