// @ts-check
import { html, useState } from 'htm/preact/standalone';
import { getDeployment, listTools, putDeployment, putTool } from '../client.js';
import { useApi } from '../hooks.js';
import { ErrorNote, StateBadge } from './common.js';

/** @import { Tool, ToolSpec } from '../client.js' */
/** @typedef {{ ok: boolean, text: string }} Message */
/** @typedef {SubmitEvent & { currentTarget: HTMLFormElement }} FormSubmit */

const EXAMPLE = '{\n  "image": "busybox:latest",\n  "command": ["sleep", "3600"]\n}';

/** @param {{ name: string, replicas: number }} props */
function ScaleForm({ name, replicas }) {
  const [msg, setMsg] = useState(/** @type {Message | null} */ (null));
  const id = `scale-${name}`;
  /** @param {FormSubmit} ev */
  const submit = async (ev) => {
    ev.preventDefault();
    const n = Number(new FormData(ev.currentTarget).get('replicas'));
    try {
      await putDeployment(name, { replicas: n });
      setMsg({ ok: true, text: `Scaling ${name} to ${n}.` });
    } catch (e) {
      setMsg({ ok: false, text: /** @type {Error} */ (e).message });
    }
  };
  return html`<form class="inline" onSubmit=${submit}>
    <label for=${id}>Replicas of ${name}</label>
    <input id=${id} name="replicas" type="number" min="0" max="1000" required defaultValue=${replicas ?? 0} />
    <button type="submit">Scale ${name}</button>
    ${msg && html`<span role=${msg.ok ? 'status' : 'alert'} class=${msg.ok ? 'ok' : 'error'}>${msg.text}</span>`}
  </form>`;
}

/**
 * The latest rolling update, when there was one: versions, state and, after a rollback, why.
 * @param {import('../client.js').Deployment['rollout']} r
 */
function rolloutLine(r) {
  if (!r?.state) return '';
  const state = { progressing: 'in progress', complete: 'complete', rolled_back: 'rolled back' }[r.state];
  return html`<p class="rollout">Rollout from version ${r.from ?? '—'} to ${r.to ?? '—'}: <strong>${state}</strong>${r.reason ? ` (${r.reason})` : ''}</p>`;
}

/** @param {{ name: string, tick: number }} props */
function Deployment({ name, tick }) {
  const { data, error } = useApi(`deployment:${name}`, () => getDeployment(name), tick);
  if (error?.status === 404 || (!data && !error)) return html`<p>No deployment yet.</p><${ScaleForm} name=${name} replicas=${0} />`;
  if (!data) return html`<${ErrorNote} error=${error} />`;
  /** @type {Record<string, number>} */
  const byState = {};
  for (const i of data.instances) byState[i.state] = (byState[i.state] ?? 0) + 1;
  return html`<p class="deployment" data-testid=${`deployment-${name}`}>
      <strong>${data.running} of ${data.replicas} running</strong>
      ${Object.entries(byState).map(([s, n]) => html` <${StateBadge} value=${s} /> ${n}`)}
    </p>
    ${rolloutLine(data.rollout)}
    <${ScaleForm} name=${name} replicas=${data.replicas} />`;
}

/** @param {{ tool: Tool, tick: number }} props */
function ToolCard({ tool, tick }) {
  const s = tool.spec;
  return html`<article class="card" aria-labelledby=${`tool-${tool.name}`}>
    <h3 id=${`tool-${tool.name}`}>${tool.name} <small>version ${tool.version}</small></h3>
    <p><code>${s.image}</code> ${s.command?.length ? html`<code>${JSON.stringify(s.command)}</code>` : ''}</p>
    <${Deployment} name=${tool.name} tick=${tick} />
    <details><summary>Spec of ${tool.name}</summary><pre>${JSON.stringify(s, null, 2)}</pre></details>
  </article>`;
}

/** @param {{ onApplied: () => void }} props */
function ApplyTool({ onApplied }) {
  const [msg, setMsg] = useState(/** @type {Message | null} */ (null));
  /** @param {FormSubmit} ev */
  const submit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    const name = String(f.get('name')).trim();
    /** @type {ToolSpec} */
    let spec;
    try {
      spec = JSON.parse(String(f.get('spec')));
    } catch {
      return setMsg({ ok: false, text: 'The spec is not valid JSON.' });
    }
    try {
      // The server validates the spec and names the field it refuses.
      const t = await putTool(name, spec);
      setMsg({ ok: true, text: `Saved ${t.name}, version ${t.version}.` });
      onApplied();
    } catch (e) {
      setMsg({ ok: false, text: /** @type {Error} */ (e).message });
    }
  };
  return html`<details class="card">
    <summary>Add or update a tool</summary>
    <form onSubmit=${submit}>
      <label for="tool-name">Tool name</label>
      <input id="tool-name" name="name" required autocomplete="off" />
      <label for="tool-spec">Tool spec (JSON)</label>
      <textarea id="tool-spec" name="spec" rows="8" required defaultValue=${EXAMPLE}></textarea>
      <button type="submit">Save tool</button>
      ${msg && html`<p role=${msg.ok ? 'status' : 'alert'} class=${msg.ok ? 'ok' : 'error'}>${msg.text}</p>`}
    </form>
  </details>`;
}

/** @param {{ tick: number }} props */
export function ToolsView({ tick }) {
  const [bump, setBump] = useState(0);
  const { data, error } = useApi('tools', listTools, tick + bump * 1e6);
  return html`<${ApplyTool} onApplied=${() => setBump((n) => n + 1)} />
    <${ErrorNote} error=${error} />
    ${data && !data.length ? html`<p>No tools yet.</p>` : ''}
    ${(data ?? []).map((t) => html`<${ToolCard} key=${t.name} tool=${t} tick=${tick} />`)}`;
}
