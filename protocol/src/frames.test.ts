import { describe, expect, it } from 'vitest';
import { parseAgentFrame, parseServerFrame, PROTOCOL_VERSION } from './index.ts';

const hello = { type: 'hello', protocol: PROTOCOL_VERSION, agentVersion: '0.1.0', hostName: 'h1', labels: {}, capacity: { cpus: 2, memoryMb: 1024 }, lastRevision: 0 };

describe('frames', () => {
  it('accepts a valid hello and status', () => {
    expect(parseAgentFrame(JSON.stringify(hello))).toMatchObject({ ok: true });
    const status = { type: 'status', seq: 1, revision: 3, instances: [{ id: 'i1', state: 'running', containerId: 'abc', exitCode: null, restarts: 0, reason: null, version: 1 }] };
    expect(parseAgentFrame(JSON.stringify(status))).toMatchObject({ ok: true });
  });
  it.each([
    ['non-JSON', 'not json', 'not JSON'],
    ['an unknown type', JSON.stringify({ type: 'exec', cmd: 'rm -rf /' }), 'invalid frame'],
    ['a missing field', JSON.stringify({ ...hello, hostName: undefined }), 'hostName'],
    ['an extra field', JSON.stringify({ ...hello, privileged: true }), 'invalid frame'],
    ['a negative revision', JSON.stringify({ ...hello, lastRevision: -1 }), 'lastRevision'],
  ])('refuses %s', (_n, raw, msg) => {
    const r = parseAgentFrame(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(msg);
  });
  it('validates every spec inside a snapshot with the tool spec schema', () => {
    const inst = { id: 'i1', tool: 't', version: 1, kind: 'replica', revision: 1, desired: 'running', spec: { image: 'x', privileged: true } };
    expect(parseServerFrame(JSON.stringify({ type: 'snapshot', revision: 1, instances: [inst] })).ok).toBe(false);
    const ok = parseServerFrame(JSON.stringify({ type: 'snapshot', revision: 1, instances: [{ ...inst, spec: { image: 'x' } }] }));
    expect(ok.ok && ok.frame.type === 'snapshot' && ok.frame.instances[0]!.spec.user).toBe('65534:65534');
  });
});
