import { useEffect, useState } from 'htm/preact/standalone';
import { api } from './api.js';

/**
 * Data for a view: fetched on mount, again whenever `tick` changes (a live event arrived)
 * and every few seconds, since observed state (containers running) is reported by agents
 * without an event of its own.
 */
export function useApi(path, tick, everyMs = 3000) {
  const [state, setState] = useState({ data: null, error: null });
  const [poll, setPoll] = useState(0);
  useEffect(() => {
    if (!path) return undefined;
    let live = true;
    api('GET', path)
      .then((data) => live && setState({ data, error: null }))
      .catch((error) => live && setState((s) => ({ data: s.data, error })));
    const t = setTimeout(() => live && setPoll((n) => n + 1), everyMs);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [path, tick, poll]);
  return state;
}

export function useHashRoute(routes, fallback) {
  const read = () => {
    const r = location.hash.replace(/^#\/?/, '');
    return routes.includes(r) ? r : fallback;
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
