// @ts-check
import { html } from 'htm/preact/standalone';

/** @import { LoadError } from '../hooks.js' */

/** @param {string | null | undefined} iso */
export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
/** @param {Record<string, string> | null | undefined} labels */
export const labelsText = (labels) => Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—';

/**
 * The error of the last fetch, if any, announced politely.
 * @param {{ error: LoadError | null }} props
 */
export function ErrorNote({ error }) {
  if (!error) return null;
  const msg = error.status === 403 ? 'Your token’s role may not see this.' : error.message;
  return html`<p role="alert" class="error">${msg}</p>`;
}

/** @param {{ value: string }} props */
export const StateBadge = ({ value }) => html`<span class=${`badge badge-${value}`}>${value}</span>`;
