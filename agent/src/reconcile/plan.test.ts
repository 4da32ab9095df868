import { describe, expect, it } from 'vitest';
import { ToolSpecSchema } from '../../../protocol/src/index.ts';
import type { DesiredInstance, ToolSpecInput } from '../../../protocol/src/index.ts';
import type { ObservedContainer } from '../docker/port.ts';
import { buildCreatePayload } from '../docker/payload.ts';
import { isNoop, plan } from './plan.ts';
import type { Plan } from './plan.ts';
import { diffStatus, statusOf } from './status.ts';

function inst(id: string, o: Partial<Omit<DesiredInstance, 'spec'>> & { spec?: ToolSpecInput } = {}): DesiredInstance {
  const { spec, ...rest } = o;
  return {
    id,
    tool: 'echo',
    version: 1,
    kind: 'replica',
    revision: 1,
    desired: 'running',
    ...rest,
    spec: ToolSpecSchema.parse({ image: 'machete/busybox:test', ...spec }),
  };
}

function ctr(id: string, instanceId: string, o: Partial<ObservedContainer> = {}): ObservedContainer {
  return {
    id,
    name: `machete-echo-${instanceId}`,
    instanceId,
    tool: 'echo',
    version: 1,
    revision: 1,
    kind: 'replica',
    state: 'running',
    exitCode: null,
    labels: {},
    ...o,
  };
}

/** The plan as ids, so the table reads like the rules. */
function summary(p: Plan) {
  return {
    create: p.create.map((d) => d.id),
    replace: p.replace.map((r) => `${r.container.id}->${r.desired.id}:${r.why}`),
    start: p.start.map((s) => s.container.id),
    stop: p.stop.map((c) => c.id),
    remove: p.remove.map((r) => `${r.container.id}:${r.why}`),
    keep: p.keep.map((c) => c.id),
  };
}

const none = { create: [], replace: [], start: [], stop: [], remove: [], keep: [] };
const exited = (code: number | null): Partial<ObservedContainer> => ({ state: 'exited', exitCode: code });

interface Case {
  name: string;
  desired: DesiredInstance[];
  observed: ObservedContainer[];
  full?: boolean;
  expect: Partial<ReturnType<typeof summary>>;
}

const cases: Case[] = [
  { name: 'creates a desired running instance that has no container', desired: [inst('a')], observed: [], expect: { create: ['a'] } },
  { name: 'does not create a desired stopped instance', desired: [inst('a', { desired: 'stopped' })], observed: [], expect: {} },
  { name: 'keeps a running container of the right version', desired: [inst('a')], observed: [ctr('c1', 'a')], expect: { keep: ['c1'] } },
  { name: 'keeps a paused container (still live)', desired: [inst('a')], observed: [ctr('c1', 'a', { state: 'paused' })], expect: { keep: ['c1'] } },
  {
    name: 'replaces a running container of another version',
    desired: [inst('a', { version: 2 })],
    observed: [ctr('c1', 'a')],
    expect: { replace: ['c1->a:version'] },
  },
  {
    name: 'replaces an exited container of another version even under restart=never',
    desired: [inst('a', { version: 2, spec: { image: 'machete/busybox:test', restart: 'never' } })],
    observed: [ctr('c1', 'a', exited(0))],
    expect: { replace: ['c1->a:version'] },
  },
  {
    name: 'restart=always replaces a container that exited 0',
    desired: [inst('a', { spec: { image: 'machete/busybox:test', restart: 'always' } })],
    observed: [ctr('c1', 'a', exited(0))],
    expect: { replace: ['c1->a:restart'] },
  },
  {
    name: 'restart=on-failure replaces a container that exited non-zero',
    desired: [inst('a', { spec: { image: 'machete/busybox:test', restart: 'on-failure' } })],
    observed: [ctr('c1', 'a', exited(137))],
    expect: { replace: ['c1->a:restart'] },
  },
  {
    name: 'restart=on-failure keeps a container that exited 0',
    desired: [inst('a', { spec: { image: 'machete/busybox:test', restart: 'on-failure' } })],
    observed: [ctr('c1', 'a', exited(0))],
    expect: { keep: ['c1'] },
  },
  {
    name: 'restart=on-failure counts an unknown exit code as a failure',
    desired: [inst('a')],
    observed: [ctr('c1', 'a', exited(null))],
    expect: { replace: ['c1->a:restart'] },
  },
  {
    name: 'restart=on-failure replaces a dead container',
    desired: [inst('a')],
    observed: [ctr('c1', 'a', { state: 'dead', exitCode: null })],
    expect: { replace: ['c1->a:restart'] },
  },
  {
    name: 'restart=never keeps a failed container exited',
    desired: [inst('a', { spec: { image: 'machete/busybox:test', restart: 'never' } })],
    observed: [ctr('c1', 'a', exited(1))],
    expect: { keep: ['c1'] },
  },
  {
    name: 'leaves invocations to the runner: a desired invocation is neither created nor restarted',
    desired: [inst('a', { kind: 'invocation', spec: { image: 'machete/busybox:test', restart: 'always' } }), inst('b', { kind: 'invocation' })],
    observed: [ctr('c1', 'a', { ...exited(1), kind: 'invocation' })],
    expect: {},
  },
  {
    name: 'never removes a running invocation or warm container as an orphan, nor counts it',
    desired: [],
    observed: [ctr('c1', 'inv', { kind: 'invocation' }), ctr('c2', 'inv2', { kind: 'invocation', ...exited(0) }), ctr('c3', 'w', { kind: 'warm' })],
    full: true,
    expect: {},
  },
  {
    name: 'an invocation container sharing an instance id is not taken for a duplicate or for the replica',
    desired: [inst('a')],
    observed: [ctr('c1', 'a', { kind: 'invocation' })],
    full: true,
    expect: { create: ['a'] },
  },
  {
    name: 'starts a created container that never ran',
    desired: [inst('a', { spec: { image: 'machete/busybox:test', restart: 'never' } })],
    observed: [ctr('c1', 'a', { state: 'created' })],
    expect: { start: ['c1'] },
  },
  {
    name: 'a created container whose start failed follows the restart policy',
    desired: [inst('a')],
    observed: [ctr('c1', 'a', { state: 'created', exitCode: 127 })],
    expect: { replace: ['c1->a:restart'] },
  },
  { name: 'stops a running container of a desired stopped instance', desired: [inst('a', { desired: 'stopped' })], observed: [ctr('c1', 'a')], expect: { stop: ['c1'] } },
  {
    name: 'keeps an exited container of a desired stopped instance',
    desired: [inst('a', { desired: 'stopped' })],
    observed: [ctr('c1', 'a', exited(143))],
    expect: { keep: ['c1'] },
  },
  {
    name: 'keeps the running right-version duplicate and removes the others',
    desired: [inst('a', { version: 2 })],
    observed: [ctr('c1', 'a', { revision: 5 }), ctr('c2', 'a', { version: 2, revision: 2 }), ctr('c3', 'a', { version: 2, ...exited(0), revision: 9 })],
    expect: { keep: ['c2'], remove: ['c3:duplicate', 'c1:duplicate'] },
  },
  {
    name: 'without an ideal duplicate keeps the newest (highest revision) and handles it by the rules',
    desired: [inst('a', { version: 3 })],
    observed: [ctr('c1', 'a', { revision: 2 }), ctr('c2', 'a', { version: 2, revision: 4, ...exited(1) })],
    expect: { replace: ['c2->a:version'], remove: ['c1:duplicate'] },
  },
  { name: 'keeps an orphan while the full desired state is unknown', desired: [], observed: [ctr('c1', 'x')], full: false, expect: { keep: ['c1'] } },
  { name: 'removes an orphan once the full desired state is known', desired: [], observed: [ctr('c1', 'x')], full: true, expect: { remove: ['c1:orphan'] } },
  {
    name: 'ignores containers the engine is already removing',
    desired: [inst('a')],
    observed: [ctr('c1', 'a', { state: 'removing' }), ctr('c2', 'x', { state: 'removing' })],
    full: true,
    expect: { create: ['a'] },
  },
  {
    name: 'sorts every list by instance id whatever the input order',
    desired: [inst('c'), inst('a'), inst('b')],
    observed: [ctr('k3', 'z'), ctr('k1', 'y'), ctr('k2', 'b', { version: 0 })],
    full: true,
    expect: { create: ['a', 'c'], replace: ['k2->b:version'], remove: ['k1:orphan', 'k3:orphan'] },
  },
];

describe('plan', () => {
  it.each(cases)('$name', ({ desired, observed, full, expect: want }) => {
    expect(summary(plan(desired, observed, { fullStateKnown: full ?? true }))).toEqual({ ...none, ...want });
  });

  it('never removes anything while the full desired state is unknown', () => {
    const observed = [ctr('c1', 'a'), ctr('c2', 'a'), ctr('c3', 'gone'), ctr('c4', 'gone2', exited(1))];
    const p = plan([inst('a')], observed, { fullStateKnown: false });
    expect(p.remove.filter((r) => r.why === 'orphan')).toEqual([]);
    expect(summary(p).keep).toEqual(['c1', 'c3', 'c4']);
  });

  it('is deterministic: shuffled input gives an equal plan', () => {
    const desired = [inst('a'), inst('b', { version: 2 }), inst('c', { desired: 'stopped' })];
    const observed = [ctr('c1', 'a'), ctr('c2', 'a', { revision: 3 }), ctr('c3', 'b'), ctr('c4', 'c'), ctr('c5', 'x')];
    const p1 = plan(desired, observed, { fullStateKnown: true });
    const p2 = plan([...desired].reverse(), [...observed].reverse(), { fullStateKnown: true });
    expect(summary(p2)).toEqual(summary(p1));
  });
});

/** Applies a plan to an observed state the way a well-behaved engine would. */
function applied(p: Plan, observed: ObservedContainer[]): ObservedContainer[] {
  let next = 0;
  const fresh = (d: DesiredInstance) => ctr(`new${next++}`, d.id, { version: d.version, revision: d.revision, kind: d.kind });
  const gone = new Set([...p.remove.map((r) => r.container.id), ...p.replace.map((r) => r.container.id)]);
  const stopped = new Set(p.stop.map((c) => c.id));
  const started = new Set(p.start.map((s) => s.container.id));
  const kept = observed
    .filter((c) => !gone.has(c.id))
    .map((c) => (stopped.has(c.id) ? { ...c, ...exited(143) } : started.has(c.id) ? { ...c, state: 'running' } : c));
  return [...kept, ...p.create.map(fresh), ...p.replace.map((r) => fresh(r.desired))];
}

describe('plan idempotence', () => {
  const desired = [
    inst('a'),
    inst('b', { version: 2 }),
    inst('c', { desired: 'stopped' }),
    inst('d', { spec: { image: 'machete/busybox:test', restart: 'always' } }),
    inst('e'),
    inst('f', { spec: { image: 'machete/busybox:test', restart: 'never' } }),
    inst('g'),
  ];
  const observed = [
    ctr('c1', 'a'),
    ctr('c2', 'a', exited(1)),
    ctr('c3', 'b'),
    ctr('c4', 'c'),
    ctr('c5', 'd', exited(0)),
    ctr('c6', 'f', exited(2)),
    ctr('c7', 'g', { state: 'created' }),
    ctr('c8', 'orphan'),
  ];

  it.each([true, false])('plan of the post-apply state only keeps (fullStateKnown=%s)', (full) => {
    const first = plan(desired, observed, { fullStateKnown: full });
    expect(isNoop(first)).toBe(false);
    const second = plan(desired, applied(first, observed), { fullStateKnown: full });
    expect(isNoop(second)).toBe(true);
    expect(second.keep.length).toBeGreaterThan(0);
  });
});

describe('statusOf', () => {
  const one = (d: DesiredInstance, cs: ObservedContainer[], reason?: string) =>
    statusOf([d], cs, new Map(reason === undefined ? [] : [[d.id, reason]]), new Map([[d.id, 2]]))[0];

  it.each([
    { name: 'running container → running', d: inst('a'), cs: [ctr('c1', 'a')], want: { state: 'running', containerId: 'c1', version: 1 } },
    { name: 'created container → starting', d: inst('a'), cs: [ctr('c1', 'a', { state: 'created' })], want: { state: 'starting' } },
    { name: 'exited 0 → exited', d: inst('a'), cs: [ctr('c1', 'a', exited(0))], want: { state: 'exited', exitCode: 0 } },
    { name: 'exited non-zero → failed with the code', d: inst('a'), cs: [ctr('c1', 'a', exited(137))], want: { state: 'failed', exitCode: 137 } },
    { name: 'dead → failed', d: inst('a'), cs: [ctr('c1', 'a', { state: 'dead' })], want: { state: 'failed' } },
    { name: 'no container → pending', d: inst('a'), cs: [], want: { state: 'pending', containerId: null, version: null } },
    { name: 'a removing container counts as none', d: inst('a'), cs: [ctr('c1', 'a', { state: 'removing' })], want: { state: 'pending' } },
    { name: 'no container with a reason → failed with it', d: inst('a'), cs: [], reason: 'image not found: x', want: { state: 'failed', reason: 'image not found: x' } },
    {
      name: 'exited during crash-loop backoff → failed with the countdown',
      d: inst('a', { spec: { image: 'machete/busybox:test', restart: 'always' } }),
      cs: [ctr('c1', 'a', exited(0))],
      reason: 'restarting in 2s',
      want: { state: 'failed', exitCode: 0, reason: 'restarting in 2s' },
    },
    { name: 'running with a reason stays running and says why', d: inst('a', { version: 2 }), cs: [ctr('c1', 'a')], reason: 'refused: x', want: { state: 'running', version: 1, reason: 'refused: x' } },
    { name: 'desired stopped, stopped with 143 → exited', d: inst('a', { desired: 'stopped' }), cs: [ctr('c1', 'a', exited(143))], want: { state: 'exited', exitCode: 143 } },
    { name: 'desired stopped, no container → exited', d: inst('a', { desired: 'stopped' }), cs: [], want: { state: 'exited' } },
  ])('$name', ({ d, cs, reason, want }) => {
    expect(one(d, cs, reason)).toMatchObject({ id: 'a', restarts: 2, ...want });
  });

  it('reports the best of duplicate containers and sorts by id', () => {
    const out = statusOf([inst('b'), inst('a')], [ctr('c1', 'a', exited(1)), ctr('c2', 'a'), ctr('c3', 'b')], new Map(), new Map());
    expect(out.map((s) => [s.id, s.containerId])).toEqual([
      ['a', 'c2'],
      ['b', 'c3'],
    ]);
  });

  it('clips reasons to what the protocol accepts', () => {
    expect(one(inst('a'), [], 'x'.repeat(5000))?.reason).toHaveLength(1024);
  });
});

describe('diffStatus', () => {
  it('returns only new or changed statuses', () => {
    const [a, b, c] = statusOf([inst('a'), inst('b'), inst('c')], [ctr('c1', 'a'), ctr('c2', 'b')], new Map(), new Map());
    const prev = new Map([a!, b!].map((s) => [s.id, s]));
    const next = [a!, { ...b!, state: 'failed' as const, exitCode: 1 }, c!];
    expect(diffStatus(prev, next).map((s) => s.id)).toEqual(['b', 'c']);
    expect(diffStatus(new Map(next.map((s) => [s.id, s])), next)).toEqual([]);
  });
});

describe('plan: secret rotation', () => {
  it('replaces a running container whose secret versions differ, and keeps one whose versions match', () => {
    const secrets = (version: number) => [{ name: 'k', value: 'v', version }];
    const want = inst('a', { spec: { image: 'machete/busybox:test', secrets: ['k'] }, secrets: secrets(2) });
    const built = buildCreatePayload(want, { hostId: 'h', allowedMounts: [], engineEndpoint: '/var/run/docker.sock' });
    const current = ctr('c1', 'a', { labels: { 'machete.secrets': built.body.Labels['machete.secrets']! } });
    expect(plan([want], [current], { fullStateKnown: true }).keep).toEqual([current]);
    const stale = ctr('c1', 'a', { labels: { 'machete.secrets': buildCreatePayload({ ...want, secrets: secrets(1) }, { hostId: 'h', allowedMounts: [], engineEndpoint: '/x' }).body.Labels['machete.secrets']! } });
    expect(plan([want], [stale], { fullStateKnown: true }).replace).toEqual([{ desired: want, container: stale, why: 'secrets' }]);
    // A container from before the tool named any secret has no label: replaced too.
    expect(plan([want], [ctr('c1', 'a')], { fullStateKnown: true }).replace.map((r) => r.why)).toEqual(['secrets']);
  });
});
