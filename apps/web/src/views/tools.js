import { html, useState } from 'htm/preact/standalone';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { ErrorNote, StateBadge } from './common.js';

const EXAMPLE = '{\n  "image": "busybox:latest",\n  "command": ["sleep", "3600"]\n}';

function ScaleForm({ name, replicas }) {
  const [msg, setMsg] = useState(null);
  const id = `scale-${name}`;
  const submit = async (ev) => {
    ev.preventDefault();
    const n = Number(new FormData(ev.currentTarget).get('replicas'));
    try {
      await api('PUT', `/tools/${encodeURIComponent(name)}/deployment`, { replicas: n });
      setMsg({ ok: true, text: `Scaling ${name} to ${n}.` });
    } catch (e) {
      setMsg({ ok: false, text: e.message });
    }
  };
  return html`<form class="inline" onSubmit=${submit}>
    <label for=${id}>Replicas of ${name}</label>
    <input id=${id} name="replicas" type="number" min="0" max="1000" required defaultValue=${replicas ?? 0} />
    <button type="submit">Scale ${name}</button>
    ${msg && html`<span role=${msg.ok ? 'status' : 'alert'} class=${msg.ok ? 'ok' : 'error'}>${msg.text}</span>`}
  </form>`;
}

function Deployment({ name, tick }) {
  const { data, error } = useApi(`/tools/${encodeURIComponent(name)}/deployment`, tick);
  if (error?.status === 404 || (!data && !error)) return html`<p>No deployment yet.</p><${ScaleForm} name=${name} replicas=${0} />`;
  if (!data) return html`<${ErrorNote} error=${error} />`;
  const byState = {};
  for (const i of data.instances) byState[i.state] = (byState[i.state] ?? 0) + 1;
  return html`<p class="deployment" data-testid=${`deployment-${name}`}>
      <strong>${data.running} of ${data.replicas} running</strong>
      ${Object.entries(byState).map(([s, n]) => html` <${StateBadge} value=${s} /> ${n}`)}
    </p>
    <${ScaleForm} name=${name} replicas=${data.replicas} />`;
}

function ToolCard({ tool, tick }) {
  const s = tool.spec;
  return html`<article class="card" aria-labelledby=${`tool-${tool.name}`}>
    <h3 id=${`tool-${tool.name}`}>${tool.name} <small>version ${tool.version}</small></h3>
    <p><code>${s.image}</code> ${s.command?.length ? html`<code>${JSON.stringify(s.command)}</code>` : ''}</p>
    <${Deployment} name=${tool.name} tick=${tick} />
    <details><summary>Spec of ${tool.name}</summary><pre>${JSON.stringify(s, null, 2)}</pre></details>
  </article>`;
}

function ApplyTool({ onApplied }) {
  const [msg, setMsg] = useState(null);
  const submit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    const name = String(f.get('name')).trim();
    let spec;
    try {
      spec = JSON.parse(String(f.get('spec')));
    } catch {
      return setMsg({ ok: false, text: 'The spec is not valid JSON.' });
    }
    try {
      const t = await api('PUT', `/tools/${encodeURIComponent(name)}`, spec);
      setMsg({ ok: true, text: `Saved ${t.name}, version ${t.version}.` });
      onApplied();
    } catch (e) {
      setMsg({ ok: false, text: e.message });
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

export function ToolsView({ tick }) {
  const [bump, setBump] = useState(0);
  const { data, error } = useApi('/tools', tick + bump * 1e6);
  return html`<${ApplyTool} onApplied=${() => setBump((n) => n + 1)} />
    <${ErrorNote} error=${error} />
    ${data && !data.length ? html`<p>No tools yet.</p>` : ''}
    ${(data ?? []).map((t) => html`<${ToolCard} key=${t.name} tool=${t} tick=${tick} />`)}`;
}
