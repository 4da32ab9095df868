import { randomBytes } from 'node:crypto';
import { createDb, type Database } from '../../db/src/index.ts';
import { createApp } from '../../apps/api/src/http/app.ts';
import { createLogger } from '../../apps/api/src/logger.ts';
import { wire } from '../../apps/api/src/wiring.ts';
import type { Role } from '../../apps/api/src/auth/tokens.ts';
import type { HttpLimits } from '../../apps/api/src/http/deps.ts';

/** A whole API on an in-memory PGlite (or a given database), driven with app.request(). */
export async function makeApi(opts: { database?: Database; limits?: HttpLimits } = {}) {
  const database = opts.database ?? (await createDb({ driver: 'pglite' }));
  const key = new Uint8Array(randomBytes(32));
  const log = createLogger('silent');
  const { deps, hub, feed } = wire({ db: database.db, key, log, heartbeatMs: 1000, ...(opts.limits ? { limits: opts.limits } : {}) });
  const app = createApp(deps);
  const token = async (role: Role) => (await deps.tokens.issue({ kind: 'user', role, ttlSeconds: 3600 })).token;
  const admin = await token('admin');
  const call = async (method: string, path: string, body?: unknown, bearer: string | null = admin) => {
    const headers: Record<string, string> = {};
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await app.request(path, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
    const text = await res.text();
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json, headers: res.headers };
  };
  return { app, deps, hub, feed, database, key, token, admin, call, close: () => database.close() };
}
