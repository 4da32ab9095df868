import { EventEmitter } from 'node:events';

/**
 * Tells agent sessions that desired state of some hosts changed. In-process for one
 * control plane; the multi-replica issue backs the same interface with LISTEN/NOTIFY.
 */
export interface ChangeFeed {
  publish(hostIds: Iterable<string | null>): void;
  subscribe(fn: (hostIds: string[]) => void): () => void;
}

export function createLocalChangeFeed(): ChangeFeed {
  const ee = new EventEmitter();
  ee.setMaxListeners(0);
  return {
    publish(hostIds) {
      const ids = [...new Set([...hostIds].filter((h): h is string => !!h))];
      if (ids.length) ee.emit('change', ids);
    },
    subscribe(fn) {
      ee.on('change', fn);
      return () => ee.off('change', fn);
    },
  };
}

const CHANNEL = 'machete_desired';
/** NOTIFY payloads must stay under 8,000 bytes; host ids are ~17 characters. */
const IDS_PER_NOTIFY = 300;

/**
 * The change feed shared by every control-plane replica on one PostgreSQL: a change written
 * through any replica reaches the replica holding the agent's connection. Delivery to this
 * process comes back through LISTEN too, so there is one path for local and remote changes.
 */
export async function createPgChangeFeed(
  database: { listen(channel: string, fn: (payload: string) => void): Promise<() => Promise<void>>; notify(channel: string, payload: string): Promise<void> },
  onError: (err: unknown) => void,
): Promise<ChangeFeed & { close(): Promise<void> }> {
  const local = createLocalChangeFeed();
  const unlisten = await database.listen(CHANNEL, (payload) => {
    try {
      const ids = JSON.parse(payload) as unknown;
      if (Array.isArray(ids)) local.publish(ids.filter((x): x is string => typeof x === 'string'));
    } catch (err) {
      onError(err);
    }
  });
  return {
    publish(hostIds) {
      const ids = [...new Set([...hostIds].filter((h): h is string => !!h))];
      for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
        database.notify(CHANNEL, JSON.stringify(ids.slice(i, i + IDS_PER_NOTIFY))).catch(onError);
      }
    },
    subscribe: (fn) => local.subscribe(fn),
    close: unlisten,
  };
}
