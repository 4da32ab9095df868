// @ts-check
import { html } from 'htm/preact/standalone';
import { fmtTime } from './common.js';

/** @import { ApiEvent } from '../client.js' */

/**
 * Events arrive live from the shell's one stream; newest first here.
 * @param {{ events: ApiEvent[] }} props
 */
export function EventsView({ events }) {
  const rows = [...events].reverse();
  return html`<div role="log" aria-label="Live events"><table>
    <caption>Audit and lifecycle events, newest first (live)</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th><th scope="col">Reason</th></tr></thead>
    <tbody>
      ${rows.map(
        (e) => html`<tr key=${e.id} data-action=${e.action}>
          <td>${fmtTime(e.at)}</td><td>${e.kind}</td><td>${e.actor}</td><th scope="row">${e.action}</th>
          <td>${e.target ?? ''}</td><td class=${`outcome-${e.outcome}`}>${e.outcome}</td><td>${e.reason ?? ''}</td>
        </tr>`,
      )}
    </tbody>
  </table></div>`;
}
