import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The secret files compose/docker-compose.yml reads (`secrets:` → /run/secrets/NAME).
 * Generated values are random; join tokens can only come from a running control plane
 * (`machete join-token create`), so their files start empty and are filled in later.
 * Values are never returned to the caller: only names and what happened to each file.
 */
export const POSTGRES_USER = 'machete';
export const POSTGRES_DB = 'machete';
export const POSTGRES_HOST = 'postgres';

export type SecretStatus = 'created' | 'replaced' | 'kept';
export interface SecretResult {
  name: string;
  file: string;
  status: SecretStatus;
  note?: string;
}

export interface SecretsInitOptions {
  dir: string;
  /** Replace generated secrets that exist (join-token files are never emptied). */
  force: boolean;
  /** How many join_token_hostN placeholders to create. */
  hosts: number;
  /** chown new files (and the directory) to this uid:gid: the containers read them as uid 1000. */
  owner?: { uid: number; gid: number };
}

const random = (bytes: number) => randomBytes(bytes).toString('base64url');

function exists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** A kept file is left as it is, but a loose mode is worth saying (the server refuses such a signing key). */
function keptNote(file: string, note?: string): string | undefined {
  const mode = lstatSync(file).mode & 0o777;
  return mode & 0o077 ? `mode ${mode.toString(8)}: chmod 600 it` : note;
}

/** 0600 from the first byte: exclusive create, or a temp file renamed over the old one. */
function writeSecret(file: string, value: string, replace: boolean, owner: SecretsInitOptions['owner']): void {
  if (!replace) {
    writeFileSync(file, value, { mode: 0o600, flag: 'wx' });
  } else {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, value, { mode: 0o600, flag: 'wx' });
    if (owner) chownSync(tmp, owner.uid, owner.gid);
    renameSync(tmp, file);
  }
  if (owner) chownSync(file, owner.uid, owner.gid);
  chmodSync(file, 0o600);
}

export function initSecrets(opts: SecretsInitOptions): SecretResult[] {
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  if (opts.owner) chownSync(opts.dir, opts.owner.uid, opts.owner.gid);
  const out: SecretResult[] = [];
  /** `onReplace`: what replacing this secret on a running deployment means. */
  const put = (name: string, make: () => string, onReplace?: string): void => {
    const file = path.join(opts.dir, name);
    const present = exists(file);
    if (present && !opts.force) {
      out.push({ name, file, status: 'kept', note: keptNote(file, 'exists; --force replaces it') });
      return;
    }
    writeSecret(file, make(), present, opts.owner);
    out.push({ name, file, status: present ? 'replaced' : 'created', ...(present && onReplace ? { note: onReplace } : {}) });
  };

  // ≥ 32 bytes is the server's floor (loadSigningKey); 48 random bytes give 64 characters.
  put('signing_key', () => random(48), 'replacing it signs everyone out and every agent must join again');
  // Its own key for tool secrets at rest (MACHETE_SECRETS_KEY_FILE), so rotating the signing key leaves them readable.
  put('secrets_key', () => random(48), 'stored tool secrets can no longer be decrypted: set them again (machete secret set)');
  // Prometheus sends it to GET /metrics (MACHETE_METRICS_TOKEN_FILE).
  put('metrics_token', () => random(32), 'give Prometheus the new one');
  put('postgres_password', () => random(32), 'a running PostgreSQL keeps its old password until ALTER ROLE (docs/deploy.md)');
  // Derived from the password file as it is now, so a kept password and a new URL agree.
  const password = readFileSync(path.join(opts.dir, 'postgres_password'), 'utf8').trim();
  put('database_url', () => `postgres://${POSTGRES_USER}:${encodeURIComponent(password)}@${POSTGRES_HOST}:5432/${POSTGRES_DB}`);
  for (let i = 1; i <= opts.hosts; i++) {
    const name = `join_token_host${i}`;
    const file = path.join(opts.dir, name);
    if (exists(file)) {
      const note = keptNote(file);
      out.push({ name, file, status: 'kept', ...(note ? { note } : {}) });
      continue;
    }
    writeSecret(file, '', false, opts.owner);
    out.push({ name, file, status: 'created', note: 'empty: fill with `machete join-token create`' });
  }
  return out;
}
