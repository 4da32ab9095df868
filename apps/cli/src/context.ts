import { InvalidArgumentError } from 'commander';
import { ApiClient } from './client.ts';
import { loadCliConfig, type CliConfig } from './config.ts';
import { CliError, type CliIo } from './io.ts';

/** What every command gets: the streams, and the configuration and client, built on first use. */
export interface Ctx {
  io: CliIo;
  config(): CliConfig;
  /** A client with the configured token; fails with a hint when there is none. */
  client(): ApiClient;
}

export function createContext(io: CliIo): Ctx {
  let config: CliConfig | null = null;
  const ctx: Ctx = {
    io,
    config() {
      if (!config) {
        try {
          config = loadCliConfig(io.env);
        } catch (err) {
          throw new CliError((err as Error).message);
        }
      }
      return config;
    },
    client() {
      const c = ctx.config();
      if (!c.token) throw new CliError(`no token for ${c.server}: run machete login, or set MACHETE_TOKEN`);
      return new ApiClient({ server: c.server, token: c.token, ...(io.signal ? { signal: io.signal } : {}) });
    },
  };
  return ctx;
}

/** commander argument parser for an integer in [min, max]; a bad value is a usage error (exit 2). */
export function intArg(what: string, min: number, max: number) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new InvalidArgumentError(`${what} must be a whole number`);
    const n = Number(raw);
    if (n < min || n > max) throw new InvalidArgumentError(`${what} must be between ${min} and ${max}`);
    return n;
  };
}

/** commander collector for repeatable options (`--label a=1 --label b=2`). */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
