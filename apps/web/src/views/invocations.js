// @ts-check
import { html, useState } from 'htm/preact/standalone';
import { invoke, listTools } from '../client.js';
import { useApi } from '../hooks.js';
import { fmtTime } from './common.js';

/** @import { Invocation, InvokeRequest } from '../client.js' */

/** The API keeps no list of invocations per user, so this page shows the ones run from it. */
/** @type {Invocation[]} */
let history = [];

/** @param {{ r: Invocation }} props */
function Result({ r }) {
  return html`<article class="card result" aria-label=${`Invocation ${r.id}`}>
    <h3>${r.tool}: <span class=${`badge badge-${r.status}`}>${r.status}</span> exit code <output data-testid="exit-code">${r.exitCode ?? '—'}</output></h3>
    <p>${r.durationMs ?? '—'} ms on ${r.hostId ?? '—'}, ${fmtTime(r.finishedAt)}${r.truncated ? ', output truncated' : ''}${r.reason ? `, ${r.reason}` : ''}</p>
    <h4>stdout</h4><pre data-testid="stdout">${r.stdout}</pre>
    ${r.stderr ? html`<h4>stderr</h4><pre data-testid="stderr">${r.stderr}</pre>` : ''}
  </article>`;
}

/** @param {{ tick: number }} props */
export function InvocationsView({ tick }) {
  const tools = useApi('tools', listTools, tick, 10_000);
  const [results, setResults] = useState(history);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {string | null} */ (null));
  /** @param {SubmitEvent & { currentTarget: HTMLFormElement }} ev */
  const submit = async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.currentTarget);
    const name = String(f.get('tool')).trim();
    const argsText = String(f.get('args')).replace(/\r?\n$/, '');
    /** @type {InvokeRequest} */
    const body = { args: argsText ? argsText.split('\n') : [] };
    if (f.get('stdin')) body.stdin = String(f.get('stdin'));
    if (f.get('timeout')) body.timeoutSeconds = Number(f.get('timeout'));
    setBusy(true);
    setError(null);
    try {
      const r = await invoke(name, body);
      history = [{ ...r, tool: name }, ...history].slice(0, 20);
      setResults(history);
    } catch (e) {
      setError(/** @type {Error} */ (e).message);
    } finally {
      setBusy(false);
    }
  };
  // An invoker may not list tools (403): then the name is typed in.
  const names = (tools.data ?? []).map((t) => t.name);
  return html`<form class="card" onSubmit=${submit}>
      <label for="invoke-tool">Tool</label>
      ${tools.error
        ? html`<input id="invoke-tool" name="tool" required autocomplete="off" />`
        : html`<select id="invoke-tool" name="tool" required>${names.map((n) => html`<option value=${n}>${n}</option>`)}</select>`}
      <label for="invoke-args">Arguments, one per line</label>
      <textarea id="invoke-args" name="args" rows="3"></textarea>
      <label for="invoke-stdin">Standard input (optional)</label>
      <textarea id="invoke-stdin" name="stdin" rows="2"></textarea>
      <label for="invoke-timeout">Timeout in seconds (optional)</label>
      <input id="invoke-timeout" name="timeout" type="number" min="1" max="86400" />
      <button type="submit" disabled=${busy}>${busy ? 'Running…' : 'Run'}</button>
      ${error && html`<p role="alert" class="error">${error}</p>`}
    </form>
    <section aria-live="polite" aria-label="Results">
      ${results.map((r) => html`<${Result} key=${r.id} r=${r} />`)}
    </section>`;
}
