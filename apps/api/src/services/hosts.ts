import { randomBytes } from 'node:crypto';
import { and, asc, eq, inArray, lt, ne, sql } from 'drizzle-orm';
import type { Hello } from '../../../../protocol/src/index.ts';
import { hosts, instances, toolVersions } from '../../../../db/src/index.ts';
import { MacheteError, notFound } from '../errors.ts';
import { advanceRollouts, scheduleAll, scheduleTool, type ScheduleNote } from '../scheduler/scheduler.ts';
import { recordScheduleNotes } from './scheduleNotes.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { ServiceDeps } from './deps.ts';
import { bumpRevision } from './revision.ts';
import { createSeenBatcher } from './seenBatch.ts';

/** Default lifetime of a host credential (MACHETE_AGENT_TOKEN_TTL_SECONDS). */
export const AGENT_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
const credentialRefused = () => new MacheteError('unauthenticated', 'missing, invalid, expired or revoked token');

export interface HostView {
  id: string;
  name: string;
  labels: Record<string, string>;
  status: 'ready' | 'down' | 'draining';
  schedulable: boolean;
  lastSeenAt: string | null;
  capacity: { cpus: number; memoryMb: number };
  allocated: { cpus: number; memoryMb: number; instances: number };
}

export function createHostService({ db, feed, events }: ServiceDeps, tokens: TokenService, opts: { agentTokenTtlSeconds?: number } = {}) {
  const agentTtl = opts.agentTokenTtlSeconds ?? AGENT_TOKEN_TTL_SECONDS;
  const seen = createSeenBatcher(db);
  /** Scheduler notes become lifecycle events, after the change they describe committed. */
  // Whichever pass stops a draining host's last originals (a status report or the leader's sweep) says it is drained.
  const recordNotes = async (notes: ScheduleNote[]) => {
    await recordScheduleNotes(events, notes);
    await announceDrained(notes.filter((n) => n.action === 'drain.originals.removed').flatMap((n) => n.data.hosts as string[]));
  };
  const reschedule = async () => feed.publish(await scheduleAll(db, recordNotes));
  /** A draining host whose last replica just went is drained: said once, by the step that removed it. */
  const announceDrained = async (hostIds: string[]) => {
    for (const id of hostIds) {
      const [left] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(instances)
        .where(and(eq(instances.hostId, id), eq(instances.kind, 'replica'), ne(instances.desired, 'removed')));
      if (Number(left?.n ?? 0) === 0) await events.record({ kind: 'lifecycle', actor: 'scheduler', action: 'host.drained', target: id, outcome: 'ok', reason: 'every replica runs elsewhere now' });
    }
  };

  // Whether any host drains, read at most once a second: a status report costs no query otherwise.
  let draining: { at: number; any: Promise<boolean> } = { at: 0, any: Promise.resolve(false) };
  const anyDraining = (): Promise<boolean> => {
    if (Date.now() - draining.at > 1000) {
      const any = db.select({ id: hosts.id }).from(hosts).where(eq(hosts.status, 'draining')).limit(1).then((r) => r.length > 0);
      draining = { at: Date.now(), any };
    }
    return draining.any;
  };

  const svc = {
    /** Re-runs placement for every tool and tells the affected agents (sweep, host up or down). */
    reschedule,

    /**
     * Pushes again to hosts whose agent has not acknowledged a change placed on it: a replica
     * killed between its commit and its NOTIFY leaves such a change, which this hands to
     * whichever replica holds the agent (a no-op where it was sent already).
     */
    async republishLagging(): Promise<void> {
      const behind = await db
        .select({ id: hosts.id })
        .from(hosts)
        // Lagging for a while, not just busy acknowledging: re-publishing every host of a fleet-wide
        // change while its acknowledgements are still arriving doubled the hub's work for nothing.
        .where(and(ne(hosts.status, 'down'), sql`exists (select 1 from ${instances} where ${instances.hostId} = ${hosts.id} and ${instances.revision} > ${hosts.appliedRevision} and ${instances.updatedAt} < now() - interval '5 seconds')`));
      feed.publish(behind.map((h) => h.id));
    },

    /** The next step of every rollout in progress (the leader's rollout tick: minimum-ready times and deadlines need a clock). */
    advanceRollouts: async () => feed.publish(await advanceRollouts(db, recordNotes)),

    /** Trades a join token for a host identity and a credential bound to that host. */
    async enroll(name: string, labels: Record<string, string>): Promise<{ hostId: string; token: string; expiresAt: Date }> {
      const hostId = `h${randomBytes(8).toString('hex')}`;
      await db.insert(hosts).values({ id: hostId, name, labels, status: 'down' });
      const t = await tokens.issue({ kind: 'agent', hostId, ttlSeconds: agentTtl, name });
      await events.record({ kind: 'audit', actor: `host:${hostId}`, action: 'host.enroll', target: hostId, outcome: 'ok', data: { name } });
      return { hostId, token: t.token, expiresAt: t.expiresAt };
    },

    /**
     * A fresh credential (new jti) for an enrolled host, traded for a valid one. The presented
     * token stays valid until it expires: an agent that dies before the new one reaches its disk
     * still holds a working credential. Every older token of the host is revoked, so at most two
     * are ever live. A removed host cannot renew: its row is gone and its tokens are revoked.
     */
    async renew(hostId: string, presentedTokenId: string): Promise<{ hostId: string; token: string; expiresAt: Date }> {
      const [h] = await db.select({ name: hosts.name }).from(hosts).where(eq(hosts.id, hostId));
      if (!h) throw credentialRefused();
      const t = await tokens.issue({ kind: 'agent', hostId, ttlSeconds: agentTtl, name: h.name });
      await tokens.revokeHost(hostId, [presentedTokenId, t.id]);
      // Removed while we issued: remove() may have revoked before our token existed, so revoke again.
      if (!(await svc.exists(hostId))) {
        await tokens.revokeHost(hostId);
        throw credentialRefused();
      }
      await events.record({ kind: 'audit', actor: `host:${hostId}`, action: 'host.credential.renew', target: hostId, outcome: 'ok', data: { expiresAt: t.expiresAt.toISOString() } });
      return { hostId, token: t.token, expiresAt: t.expiresAt };
    },

    /**
     * Forgets a host: its credentials stop working at once (revoked; connect and renew also
     * check that the host exists), its instances are tombstoned, so the agent, while still
     * connected, is told to stop them, and the scheduler places their replacements elsewhere.
     */
    async remove(id: string, actor: string): Promise<void> {
      const tombstoned = await db.transaction(async (tx) => {
        const rows = await tx.delete(hosts).where(eq(hosts.id, id)).returning({ id: hosts.id });
        if (!rows.length) return null;
        const revision = await bumpRevision(tx);
        const gone = await tx
          .update(instances)
          .set({ desired: 'removed', state: 'lost', reason: 'host removed', revision, updatedAt: new Date() })
          .where(and(eq(instances.hostId, id), ne(instances.desired, 'removed')))
          .returning({ id: instances.id });
        return gone.length;
      });
      if (tombstoned === null) throw notFound('host');
      const revoked = await tokens.revokeHost(id);
      await events.record({ kind: 'audit', actor, action: 'host.remove', target: id, outcome: 'ok', data: { revokedTokens: revoked, instances: tombstoned } });
      // Every replica closes the host's agent session after sending it the tombstones.
      feed.publishRemoved([id]);
      await reschedule();
    },

    async exists(hostId: string): Promise<boolean> {
      const [h] = await db.select({ id: hosts.id }).from(hosts).where(eq(hosts.id, hostId));
      return !!h;
    },

    /** A connected agent said hello: the host is ready, and pending work may now fit. */
    async connected(hostId: string, hello: Hello): Promise<void> {
      const [before] = await db.select({ status: hosts.status, labels: hosts.labels }).from(hosts).where(eq(hosts.id, hostId));
      const labels = { ...(before?.labels ?? {}), ...hello.labels };
      await db
        .update(hosts)
        .set({ name: hello.hostName, labels, capacity: hello.capacity, status: before?.status === 'draining' ? 'draining' : 'ready', lastSeenAt: new Date() })
        .where(eq(hosts.id, hostId));
      if (before?.status !== 'ready') {
        await events.record({ kind: 'lifecycle', actor: `host:${hostId}`, action: 'host.ready', target: hostId, outcome: 'ok' });
        await reschedule();
      }
    },

    /**
     * After a status report: replacements that now run let a drain stop its originals.
     * Costs one query per report that mentions a running instance.
     */
    async afterStatus(report: { id: string; state: string }[]): Promise<void> {
      const running = report.filter((r) => r.state === 'running').map((r) => r.id);
      if (!running.length || !(await anyDraining())) return;
      const draining = await db
        .selectDistinct({ tool: instances.tool })
        .from(instances)
        .innerJoin(hosts, eq(hosts.id, instances.hostId))
        .where(
          and(
            eq(hosts.status, 'draining'),
            eq(instances.kind, 'replica'),
            ne(instances.desired, 'removed'),
            inArray(instances.tool, db.selectDistinct({ tool: instances.tool }).from(instances).where(inArray(instances.id, running))),
          ),
        );
      for (const { tool } of draining) {
        const notes: ScheduleNote[] = [];
        feed.publish(await db.transaction((tx) => scheduleTool(tx, tool, undefined, notes)));
        await recordNotes(notes);
      }
    },

    /** Records contact; false when the host no longer exists (removed meanwhile). */
    seen: (hostId: string, appliedRevision?: number): Promise<boolean> => seen(hostId, appliedRevision),

    /** Hosts silent for longer than the grace period are down (their containers keep running). */
    async markSilentDown(graceSeconds: number, connected: Set<string>): Promise<string[]> {
      const cutoff = new Date(Date.now() - graceSeconds * 1000);
      const live = inArray(hosts.status, ['ready', 'draining']);
      const stale = await db.select({ id: hosts.id }).from(hosts).where(and(live, lt(hosts.lastSeenAt, cutoff)));
      const down = stale.map((s) => s.id).filter((id) => !connected.has(id));
      for (const id of down) {
        // Status-guarded: an agent that reconnected meanwhile keeps its host ready.
        const rows = await db.update(hosts).set({ status: 'down' }).where(and(eq(hosts.id, id), live, lt(hosts.lastSeenAt, cutoff))).returning({ id: hosts.id });
        if (!rows.length) continue;
        await events.record({ kind: 'lifecycle', actor: 'system', action: 'host.down', target: id, outcome: 'ok', reason: `no contact for ${graceSeconds}s` });
      }
      return down;
    },

    async list(): Promise<HostView[]> {
      const rows = await db.select().from(hosts).orderBy(asc(hosts.name), asc(hosts.id));
      const alloc = await allocations();
      return rows.map((h) => view(h, alloc.get(h.id)));
    },

    async get(id: string): Promise<HostView> {
      const [h] = await db.select().from(hosts).where(eq(hosts.id, id));
      if (!h) throw notFound('host');
      return view(h, (await allocations()).get(id));
    },

    async patch(id: string, body: { labels?: Record<string, string>; schedulable?: boolean }, actor: string): Promise<HostView> {
      const set: Partial<typeof hosts.$inferInsert> = {};
      if (body.labels) set.labels = body.labels;
      if (body.schedulable !== undefined) set.schedulable = body.schedulable;
      const rows = await db.update(hosts).set(set).where(eq(hosts.id, id)).returning({ id: hosts.id });
      if (!rows.length) throw notFound('host');
      // Schedulable again: a drain in progress ends (the originals still there stay).
      if (body.schedulable === true) await db.update(hosts).set({ status: 'ready' }).where(and(eq(hosts.id, id), eq(hosts.status, 'draining')));
      await events.record({ kind: 'audit', actor, action: 'host.patch', target: id, outcome: 'ok', data: body });
      await reschedule();
      return svc.get(id);
    },

    /**
     * Stops new placements and moves this host's replicas to other eligible hosts: replacements
     * start first; each original goes once a replacement runs (afterStatus); then `host.drained`.
     */
    async drain(id: string, actor: string): Promise<HostView> {
      const rows = await db.update(hosts).set({ schedulable: false, status: 'draining' }).where(eq(hosts.id, id)).returning({ id: hosts.id });
      if (!rows.length) throw notFound('host');
      draining = { at: 0, any: Promise.resolve(true) };
      await events.record({ kind: 'audit', actor, action: 'host.drain', target: id, outcome: 'ok' });
      await events.record({ kind: 'lifecycle', actor: 'scheduler', action: 'host.draining', target: id, outcome: 'ok', reason: 'no new placements; replacements start elsewhere before the originals stop' });
      await reschedule();
      await announceDrained([id]);
      return svc.get(id);
    },
  };

  async function allocations() {
    const rows = await db
      .select({ hostId: instances.hostId, spec: toolVersions.spec })
      .from(instances)
      .innerJoin(toolVersions, and(eq(toolVersions.tool, instances.tool), eq(toolVersions.version, instances.version)))
      .where(ne(instances.desired, 'removed'));
    const m = new Map<string, { cpus: number; memoryMb: number; instances: number }>();
    for (const r of rows) {
      if (!r.hostId) continue;
      const a = m.get(r.hostId) ?? { cpus: 0, memoryMb: 0, instances: 0 };
      a.cpus += r.spec.resources.cpus;
      a.memoryMb += r.spec.resources.memoryMb;
      a.instances++;
      m.set(r.hostId, a);
    }
    return m;
  }
  return svc;
}
export type HostService = ReturnType<typeof createHostService>;

function view(h: typeof hosts.$inferSelect, alloc?: { cpus: number; memoryMb: number; instances: number }): HostView {
  return {
    id: h.id,
    name: h.name,
    labels: h.labels,
    status: h.status as HostView['status'],
    schedulable: h.schedulable,
    lastSeenAt: h.lastSeenAt?.toISOString() ?? null,
    capacity: h.capacity,
    allocated: alloc ?? { cpus: 0, memoryMb: 0, instances: 0 },
  };
}
