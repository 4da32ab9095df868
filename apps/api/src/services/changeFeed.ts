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
