// @ts-check
import { html, useState } from 'htm/preact/standalone';
import { listInstances } from '../client.js';
import { useApi } from '../hooks.js';
import { ErrorNote, fmtTime, StateBadge } from './common.js';

/** @param {{ tick: number }} props */
export function InstancesView({ tick }) {
  const [tool, setTool] = useState('');
  const { data, error } = useApi(`instances:${tool}`, () => listInstances(tool ? { tool } : {}), tick);
  const rows = (data ?? []).filter((i) => i.desired !== 'removed');
  /** @param {InputEvent & { currentTarget: HTMLInputElement }} e */
  const onInput = (e) => setTool(e.currentTarget.value.trim());
  /** @param {SubmitEvent} e */
  const onSubmit = (e) => e.preventDefault();
  return html`<form class="inline" onSubmit=${onSubmit}>
      <label for="instances-tool">Only the tool</label>
      <input id="instances-tool" value=${tool} onInput=${onInput} placeholder="all tools" />
    </form>
    <${ErrorNote} error=${error} />
    <table>
      <caption>Instances (${rows.length})</caption>
      <thead><tr><th scope="col">Tool</th><th scope="col">Version</th><th scope="col">Host</th><th scope="col">Desired</th><th scope="col">State</th><th scope="col">Restarts</th><th scope="col">Exit code</th><th scope="col">Container</th><th scope="col">Updated</th></tr></thead>
      <tbody>
        ${rows.map(
          (i) => html`<tr key=${i.id}>
            <th scope="row">${i.tool} <small>${i.id}</small></th>
            <td>${i.runningVersion ?? '—'} / ${i.version}</td>
            <td>${i.hostId ?? 'unplaced'}</td>
            <td>${i.desired}</td>
            <td><${StateBadge} value=${i.state} /></td>
            <td>${i.restarts}</td>
            <td>${i.exitCode ?? '—'}</td>
            <td><code>${i.containerId ? i.containerId.slice(0, 12) : '—'}</code></td>
            <td>${fmtTime(i.updatedAt)}</td>
          </tr>`,
        )}
      </tbody>
    </table>`;
}
