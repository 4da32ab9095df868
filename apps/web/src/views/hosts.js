// @ts-check
import { html } from 'htm/preact/standalone';
import { listHosts, listInstances } from '../client.js';
import { useApi } from '../hooks.js';
import { ErrorNote, fmtTime, labelsText, StateBadge } from './common.js';

/** @import { Instance } from '../client.js' */

/**
 * Tools running on each host, as tool → number of running replicas (shown as "tool ×n").
 * @param {Instance[] | null} instances
 * @returns {Map<string, Record<string, number>>}
 */
function runningByHost(instances) {
  /** @type {Map<string, Record<string, number>>} */
  const m = new Map();
  for (const i of instances ?? []) {
    if (!i.hostId || i.desired === 'removed') continue;
    const t = m.get(i.hostId) ?? {};
    t[i.tool] = (t[i.tool] ?? 0) + (i.state === 'running' ? 1 : 0);
    m.set(i.hostId, t);
  }
  return m;
}

/** @param {{ tick: number }} props */
export function HostsView({ tick }) {
  const hosts = useApi('hosts', () => listHosts(), tick);
  const instances = useApi('instances', () => listInstances(), tick);
  const running = runningByHost(instances.data);
  return html`<${ErrorNote} error=${hosts.error} />
    <table>
      <caption>Hosts with an agent</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Labels</th><th scope="col">Capacity</th><th scope="col">Allocated</th><th scope="col">Running here</th><th scope="col">Last seen</th></tr></thead>
      <tbody>
        ${(hosts.data ?? []).map(
          (h) => html`<tr key=${h.id}>
            <th scope="row">${h.name} <small>${h.id}</small></th>
            <td><${StateBadge} value=${h.status} />${h.schedulable ? '' : ' (not schedulable)'}</td>
            <td>${labelsText(h.labels)}</td>
            <td>${h.capacity.cpus} CPU, ${h.capacity.memoryMb} MB</td>
            <td>${h.allocated.cpus} CPU, ${h.allocated.memoryMb} MB, ${h.allocated.instances} instances</td>
            <td>${Object.entries(running.get(h.id) ?? {}).map(([t, n]) => `${t} ×${n}`).join(', ') || '—'}</td>
            <td>${fmtTime(h.lastSeenAt)}</td>
          </tr>`,
        )}
      </tbody>
    </table>`;
}
