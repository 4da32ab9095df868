import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const CredentialSchema = z.object({
  server: z.string(),
  hostId: z.string(),
  token: z.string(),
  expiresAt: z.string(),
});
export type Credential = z.infer<typeof CredentialSchema>;

const FILE = 'credential.json';

/** The host credential survives restarts so the join token is needed only once. */
export function readCredential(stateDir: string): Credential | null {
  try {
    const r = CredentialSchema.safeParse(JSON.parse(readFileSync(path.join(stateDir, FILE), 'utf8')));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

export function writeCredential(stateDir: string, c: Credential): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const tmp = path.join(stateDir, `${FILE}.tmp`);
  writeFileSync(tmp, JSON.stringify(c), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path.join(stateDir, FILE));
}

/** Trades a join token for a host identity (POST /api/v1/agent/enroll). */
export async function enroll(server: string, joinToken: string, hostName: string, labels: Record<string, string>): Promise<Credential> {
  const res = await fetch(`${server}/api/v1/agent/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${joinToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hostName, labels }),
    signal: AbortSignal.timeout(15_000),
  });
  if (res.status !== 201) {
    const text = await res.text().catch(() => '');
    throw new Error(`enrollment refused (${res.status}): ${text.slice(0, 200)}`);
  }
  const body = (await res.json()) as { hostId: string; token: string; expiresAt: string };
  return { server, hostId: body.hostId, token: body.token, expiresAt: body.expiresAt };
}
