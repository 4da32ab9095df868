import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The CLI's configuration: where the control plane is and which token to send.
 * This is the only file of the CLI that reads `process.env`; everything else gets
 * an `Env` passed down, so tests run the CLI in-process with their own environment.
 *
 * Precedence: `MACHETE_SERVER` / `MACHETE_TOKEN` over the file written by `machete login`
 * (`$XDG_CONFIG_HOME/machete/config.json`, else `~/.config/machete/config.json`)
 * over the default server.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_SERVER = 'http://127.0.0.1:8090';

export interface StoredConfig {
  server?: string;
  token?: string;
}

export interface CliConfig {
  server: string;
  token: string | null;
  /** Path of the config file (whether or not it exists); null without HOME. */
  file: string | null;
}

/** The process environment; called once by runCli when the caller injects none. */
export function processEnv(): Env {
  return process.env;
}

export function configPath(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME?.trim();
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'machete', 'config.json');
  const home = env.HOME?.trim();
  if (!home) throw new Error('cannot locate the config file: HOME is not set');
  return path.join(home, '.config', 'machete', 'config.json');
}

export function readStoredConfig(file: string): StoredConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON (run machete login again)`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${file} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  return {
    ...(typeof o.server === 'string' ? { server: o.server } : {}),
    ...(typeof o.token === 'string' ? { token: o.token } : {}),
  };
}

/** Writes the file 0600 in a 0700 directory, atomically (no moment with a readable token). */
export function writeStoredConfig(file: string, cfg: Required<StoredConfig>): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tmp = path.join(dir, `.config.json.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify({ server: cfg.server, token: cfg.token }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** `http(s)://host[:port][/prefix]`, without a trailing slash. */
export function normalizeServer(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error('server must be a URL such as http://127.0.0.1:8090');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('server must be an http:// or https:// URL');
  if (u.username || u.password) throw new Error('server URL must not carry credentials');
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

export function loadCliConfig(env: Env): CliConfig {
  const fromEnv = { server: env.MACHETE_SERVER?.trim(), token: env.MACHETE_TOKEN?.trim() };
  let file: string | null = null;
  try {
    file = configPath(env);
  } catch (err) {
    // Without HOME the environment alone may still say everything.
    if (!fromEnv.server || !fromEnv.token) throw err;
  }
  const stored = file ? readStoredConfig(file) : {};
  const server = normalizeServer(fromEnv.server || stored.server || DEFAULT_SERVER);
  const token = fromEnv.token || stored.token || null;
  return { server, token, file };
}
