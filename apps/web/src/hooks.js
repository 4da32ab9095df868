// @ts-check
import { useEffect, useState } from 'htm/preact/standalone';

/** @typedef {Error & { status?: number }} LoadError an ApiError (with the HTTP status) or a network failure */

/**
 * Data for a view: fetched on mount, again whenever `key` or `tick` changes (a live event
 * arrived) and every few seconds, since observed state (containers running) is reported by
 * agents without an event of its own. `key` names what `load` fetches (null: nothing).
 * @template T
 * @param {string | null} key
 * @param {() => Promise<T>} load a route of client.js
 * @param {number} tick
 * @param {number} [everyMs]
 * @returns {{ data: T | null, error: LoadError | null }}
 */
export function useApi(key, load, tick, everyMs = 3000) {
  const [state, setState] = useState(/** @type {{ data: T | null, error: LoadError | null }} */ ({ data: null, error: null }));
  const [poll, setPoll] = useState(0);
  useEffect(() => {
    if (key === null) return undefined;
    let live = true;
    load()
      .then((data) => live && setState({ data, error: null }))
      .catch((error) => live && setState((s) => ({ data: s.data, error })));
    const t = setTimeout(() => live && setPoll((n) => n + 1), everyMs);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [key, tick, poll]);
  return state;
}

/**
 * The section named by `location.hash` (`#/tools`), or `fallback` for anything else.
 * @template {string} R
 * @param {readonly R[]} routes
 * @param {R} fallback
 * @returns {R}
 */
export function useHashRoute(routes, fallback) {
  /** @returns {R} */
  const read = () => {
    const r = location.hash.replace(/^#\/?/, '');
    return routes.find((x) => x === r) ?? fallback;
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
