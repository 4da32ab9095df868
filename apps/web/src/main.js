// @ts-check
import { html, render, useEffect, useRef, useState } from 'htm/preact/standalone';
import { ApiError, session } from './api.js';
import { followEvents, listHosts } from './client.js';
import { useHashRoute } from './hooks.js';
import { EventsView } from './views/events.js';
import { HostsView } from './views/hosts.js';
import { InstancesView } from './views/instances.js';
import { InvocationsView } from './views/invocations.js';
import { ToolsView } from './views/tools.js';

/** @import { ApiEvent } from './client.js' */
/** @import { StreamState } from './api.js' */

const VIEWS = /** @type {const} */ ([
  ['tools', 'Tools', ToolsView],
  ['hosts', 'Hosts', HostsView],
  ['instances', 'Instances', InstancesView],
  ['invocations', 'Invocations', InvocationsView],
  ['events', 'Events', EventsView],
]);
const MAX_EVENTS = 200;

/** @param {{ onSignedIn: () => void }} props */
function SignIn({ onSignedIn }) {
  const [error, setError] = useState(/** @type {string | null} */ (null));
  const [busy, setBusy] = useState(false);
  /** @param {SubmitEvent & { currentTarget: HTMLFormElement }} ev */
  const submit = async (ev) => {
    ev.preventDefault();
    const token = String(new FormData(ev.currentTarget).get('token') ?? '').trim();
    setBusy(true);
    setError(null);
    try {
      // Any user token may sign in; a 403 here only means the role cannot list hosts.
      await listHosts(token).catch((e) => {
        if (!(e instanceof ApiError && e.status === 403)) throw e;
      });
      session.set(token);
      onSignedIn();
    } catch (e) {
      setError(e instanceof ApiError && e.status === 401 ? 'The token was refused.' : `Could not sign in: ${/** @type {Error} */ (e).message}`);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>MACHETE</h1>
    <form onSubmit=${submit} aria-describedby="signin-help">
      <label for="token">Access token</label>
      <input id="token" name="token" type="password" autocomplete="off" required autofocus />
      <p id="signin-help" class="hint">Paste a user token, e.g. the contents of <code>.machete/admin.token</code>. It is kept in this tab only (sessionStorage).</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      ${error && html`<p role="alert" class="error">${error}</p>`}
    </form>
  </main>`;
}

/** @param {{ onSignOut: () => void }} props */
function Shell({ onSignOut }) {
  const route = useHashRoute(VIEWS.map((v) => v[0]), 'tools');
  const [events, setEvents] = useState(/** @type {ApiEvent[]} */ ([]));
  const [tick, setTick] = useState(0);
  const [live, setLive] = useState(/** @type {StreamState | 'connecting'} */ ('connecting'));
  const heading = useRef(/** @type {HTMLHeadingElement | null} */ (null));

  useEffect(() => {
    const ctl = new AbortController();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    followEvents({
      signal: ctl.signal,
      onState: (s) => (s === 'unauthorized' ? onSignOut() : setLive(s)),
      onEvent: (e) => {
        setEvents((list) => [...list, e].slice(-MAX_EVENTS));
        // Many events can arrive at once (a rollout): refresh the views once for them.
        clearTimeout(timer);
        timer = setTimeout(() => setTick((n) => n + 1), 200);
      },
    });
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, []);
  // A new view takes the focus to its heading, so keyboard and screen-reader users start there.
  useEffect(() => heading.current?.focus(), [route]);

  const [, title, View] = VIEWS.find((v) => v[0] === route) ?? VIEWS[0];
  return html`<div class="shell">
    <header>
      <span class="brand">MACHETE</span>
      <nav aria-label="Sections">
        <ul>
          ${VIEWS.map(([id, label]) => html`<li><a href=${`#/${id}`} aria-current=${id === route ? 'page' : undefined}>${label}</a></li>`)}
        </ul>
      </nav>
      <span class=${`live live-${live}`} role="status" aria-label="Live updates">${live === 'live' ? 'Live' : live}</span>
      <button type="button" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main">
      <h2 tabindex="-1" ref=${heading}>${title}</h2>
      <${View} tick=${tick} events=${events} />
    </main>
  </div>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(!!session.token);
  const signOut = () => {
    session.clear();
    setSignedIn(false);
  };
  return signedIn ? html`<${Shell} onSignOut=${signOut} />` : html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
}

const root = /** @type {HTMLElement} */ (document.getElementById('app'));
root.textContent = '';
render(html`<${App} />`, root);
