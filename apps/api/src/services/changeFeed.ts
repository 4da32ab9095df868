import { EventEmitter } from 'node:events';

/**
 * Tells agent sessions that desired state of some hosts changed. In-process for one
 * control plane; the multi-replica issue backs the same interface with LISTEN/NOTIFY.
 */
export interface ChangeFeed {
  publish(hostIds: Iterable<string | null>): void;
  subscribe(fn: (hostIds: string[]) => void): () => void;
  /** Hosts an operator removed: whichever replica holds their agents' connections closes them. */
  publishRemoved(hostIds: string[]): void;
  subscribeRemoved(fn: (hostIds: string[]) => void): () => void;
}

const unique = (hostIds: Iterable<string | null>) => [...new Set([...hostIds].filter((h): h is string => !!h))];

export function createLocalChangeFeed(): ChangeFeed {
  const ee = new EventEmitter();
  ee.setMaxListeners(0);
  const on = (event: string, fn: (hostIds: string[]) => void) => {
    ee.on(event, fn);
    return () => void ee.off(event, fn);
  };
  return {
    publish(hostIds) {
      const ids = unique(hostIds);
      if (ids.length) ee.emit('change', ids);
    },
    subscribe: (fn) => on('change', fn),
    publishRemoved(hostIds) {
      const ids = unique(hostIds);
      if (ids.length) ee.emit('removed', ids);
    },
    subscribeRemoved: (fn) => on('removed', fn),
  };
}

const CHANNEL = 'machete_desired';
/**
 * In a change's host list: every host. A change touching more hosts than fit in one NOTIFY is
 * sent as this one id instead of dozens of payloads that would reach the other replicas spread
 * over time (and be pushed as separate batches); each replica's hub expands it to the hosts it
 * holds, whose deltas then come from one shared query. Real host ids never look like this.
 */
export const ALL_HOSTS = '*';
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
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  // A change is a bare array of host ids; a removal is {"removed": [...]} on the same channel.
  const unlisten = await database.listen(CHANNEL, (payload) => {
    try {
      const msg = JSON.parse(payload) as unknown;
      if (Array.isArray(msg)) local.publish(strings(msg));
      else if (msg && typeof msg === 'object') local.publishRemoved(strings((msg as { removed?: unknown }).removed));
    } catch (err) {
      onError(err);
    }
  });
  const send = (ids: string[], wrap: (chunk: string[]) => unknown) => {
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      database.notify(CHANNEL, JSON.stringify(wrap(ids.slice(i, i + IDS_PER_NOTIFY)))).catch(onError);
    }
  };
  return {
    publish: (hostIds) => {
      const ids = unique(hostIds);
      send(ids.length > IDS_PER_NOTIFY ? [ALL_HOSTS] : ids, (chunk) => chunk);
    },
    subscribe: (fn) => local.subscribe(fn),
    publishRemoved: (hostIds) => send(unique(hostIds), (chunk) => ({ removed: chunk })),
    subscribeRemoved: (fn) => local.subscribeRemoved(fn),
    close: unlisten,
  };
}
