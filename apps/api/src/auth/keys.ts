import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const MIN_KEY_BYTES = 32;

/**
 * Reads the JWT signing key. Refuses (with the reason) a key that is missing,
 * shorter than 32 bytes or readable by group/others. Generates one only when
 * the path is the default and nothing is there yet.
 */
export function loadSigningKey(file: string, generateIfMissing: boolean): { key: Uint8Array; generated: boolean } {
  let generated = false;
  let st;
  try {
    st = statSync(file);
  } catch {
    if (!generateIfMissing) throw new Error(`signing key file ${file} does not exist`);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(48).toString('base64url'), { mode: 0o600, flag: 'wx' });
    generated = true;
    st = statSync(file);
  }
  if (!st.isFile()) throw new Error(`signing key ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) throw new Error(`signing key ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  const raw = readFileSync(file);
  const trimmed = Buffer.from(raw.toString('utf8').trim(), 'utf8');
  if (trimmed.length === 0) throw new Error(`signing key ${file} is empty`);
  if (trimmed.length < MIN_KEY_BYTES) throw new Error(`signing key ${file} is shorter than ${MIN_KEY_BYTES} bytes`);
  return { key: new Uint8Array(trimmed), generated };
}
