import type { Logger } from 'pino';
import { writeCredential, type Credential } from './credentials.ts';

/** Never renew more often than this, whatever the lifetime (a clock far off, a tiny TTL). */
const MIN_DELAY_MS = 1_000;
/** After a failed attempt (server unreachable, 5xx), try again this soon, capped by the time left. */
const RETRY_MS = 30_000;

export interface RenewalDeps {
  stateDir: string;
  current(): Credential;
  /** The renewed credential, already on disk: later connects use it. */
  renewed(c: Credential): void;
  log: Logger;
  fetch?: typeof fetch;
}

/**
 * Keeps the host credential fresh, as Nomad renews node identities: at two thirds of its
 * remaining lifetime the agent trades it (POST /api/v1/agent/renew) for a new one bound to the
 * same host, writes it to MACHETE_STATE_DIR (0600) and uses it from the next connect on. A
 * refused renewal (401: the host was removed or the token revoked) is not retried: the
 * connection's own 401 handling decides what happens next.
 */
export function startRenewal(d: RenewalDeps): { stop(): void } {
  const doFetch = d.fetch ?? fetch;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => void attempt(), Math.max(MIN_DELAY_MS, ms));
    timer.unref();
  };
  const left = (c: Credential) => Date.parse(c.expiresAt) - Date.now();
  /** After a refusal: resume once the agent holds another credential (it enrolled again). */
  const watchForNew = (refused: string) => {
    if (stopped) return;
    timer = setTimeout(() => (d.current().token === refused ? watchForNew(refused) : schedule((left(d.current()) * 2) / 3)), RETRY_MS);
    timer.unref();
  };

  const attempt = async () => {
    const cur = d.current();
    try {
      const res = await doFetch(`${cur.server}/api/v1/agent/renew`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cur.token}` },
        signal: AbortSignal.timeout(15_000),
      });
      if (res.status === 401) {
        d.log.error({ hostId: cur.hostId }, 'host credential renewal refused (host removed or credential revoked)');
        watchForNew(cur.token);
        return;
      }
      if (!res.ok) throw new Error(`renewal answered ${res.status}`);
      const body = (await res.json()) as { hostId: string; token: string; expiresAt: string };
      if (body.hostId !== cur.hostId || !body.token || Number.isNaN(Date.parse(body.expiresAt))) throw new Error('renewal answered a credential for another host or a malformed one');
      const next: Credential = { server: cur.server, hostId: body.hostId, token: body.token, expiresAt: body.expiresAt };
      writeCredential(d.stateDir, next);
      d.renewed(next);
      d.log.info({ hostId: next.hostId, expiresAt: next.expiresAt }, 'host credential renewed');
      schedule((left(next) * 2) / 3);
    } catch (err) {
      if (stopped) return;
      d.log.warn({ err: (err as Error).message }, 'host credential renewal failed; retrying');
      schedule(Math.min(RETRY_MS, left(cur) / 3));
    }
  };

  schedule((left(d.current()) * 2) / 3);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
