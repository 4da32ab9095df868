import { randomBytes } from 'node:crypto';
import { and, eq, inArray, lt, sql } from 'drizzle-orm';
import { ToolSpecSchema, type InvocationRequest, type InvocationResult, type SecretValue } from '../../../../protocol/src/index.ts';
import { hosts, invocations } from '../../../../db/src/index.ts';
import type { Principal } from '../auth/tokens.ts';
import { invalid, MacheteError, notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { eligible } from '../scheduler/place.ts';
import type { ServiceDeps } from './deps.ts';
import type { ToolService } from './tools.ts';

/** How the service reaches agents (the hub); a function so the two can be built in either order. */
export interface InvocationTransport {
  connectedHosts(): Set<string>;
  send(hostId: string, frame: { type: 'invoke'; invocation: InvocationRequest } | { type: 'cancel'; id: string }): boolean;
}

export interface InvocationLimits {
  maxPerTool: number;
  maxPerHost: number;
  maxOutputBytes: number;
  retentionHours: number;
}

export interface InvokeInput {
  args?: string[] | undefined;
  stdin?: string | undefined;
  env?: Record<string, string> | undefined;
  timeoutSeconds?: number | undefined;
}

export type InvocationView = {
  id: string;
  tool: string;
  version: number;
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  durationMs: number | null;
  hostId: string | null;
  reason: string | null;
  createdAt: string;
  finishedAt: string | null;
};

/** A result is owed within the tool's timeout; past it plus this grace the invocation is failed. */
const RESULT_GRACE_MS = 30_000;

export function createInvocationService(
  { db, events }: ServiceDeps,
  tools: ToolService,
  limits: InvocationLimits,
  transport: () => InvocationTransport,
  log: Logger,
  /** Values of the secrets a tool names; sent in the invoke frame to the chosen host only. */
  secrets?: (names: readonly string[]) => Promise<SecretValue[]>,
) {
  const perTool = new Map<string, number>();
  const perHost = new Map<string, number>();
  const live = new Map<string, { tool: string; hostId: string }>();
  const waiters = new Map<string, ((v: InvocationView) => void)[]>();
  const bump = (m: Map<string, number>, k: string, d: number) => m.set(k, Math.max(0, (m.get(k) ?? 0) + d));
  /**
   * Invocations still running when this process started (a restart, another replica's) count
   * against the limits until their results arrive: loaded once, before the first placement.
   */
  let adopted: Promise<void> | null = null;
  const adoptRunning = (): Promise<void> =>
    (adopted ??= (async () => {
      const rows = await db.select({ id: invocations.id, tool: invocations.tool, hostId: invocations.hostId }).from(invocations).where(eq(invocations.status, 'running'));
      for (const r of rows) {
        if (!r.hostId || live.has(r.id)) continue;
        live.set(r.id, { tool: r.tool, hostId: r.hostId });
        bump(perTool, r.tool, 1);
        bump(perHost, r.hostId, 1);
      }
    })().catch((err: unknown) => {
      adopted = null;
      throw err;
    }));

  function release(id: string): void {
    const l = live.get(id);
    if (!l) return;
    live.delete(id);
    bump(perTool, l.tool, -1);
    bump(perHost, l.hostId, -1);
  }

  /** Picks a connected, ready host for the tool with the fewest running invocations; 429 past the limits. */
  type HostRow = { id: string; status: string; schedulable: boolean; labels: Record<string, string> };
  const hostRows = (): Promise<HostRow[]> => db.select({ id: hosts.id, status: hosts.status, schedulable: hosts.schedulable, labels: hosts.labels }).from(hosts);

  /** Synchronous on purpose: placement and counting must have no await in between. */
  function place(tool: string, labels: Record<string, string>, rows: HostRow[]): string {
    const connected = transport().connectedHosts();
    const candidates = rows.filter((h) => connected.has(h.id) && eligible({ ...h, load: 0 }, labels));
    if (!candidates.length) throw new MacheteError('unavailable', 'no connected host matches the tool placement');
    if ((perTool.get(tool) ?? 0) >= limits.maxPerTool) throw new MacheteError('rate_limited', 'too many running invocations of this tool');
    const free = candidates.filter((h) => (perHost.get(h.id) ?? 0) < limits.maxPerHost);
    if (!free.length) throw new MacheteError('rate_limited', 'every eligible host is at its invocation limit');
    free.sort((a, b) => (perHost.get(a.id) ?? 0) - (perHost.get(b.id) ?? 0) || a.id.localeCompare(b.id));
    return free[0]!.id;
  }

  const svc = {
    /** Starts an invocation; resolves with its id once the agent has been asked to run it. */
    async start(name: string, input: InvokeInput, who: Principal): Promise<string> {
      // One round trip, not two: the host list does not depend on the tool.
      const [tool, rows] = await Promise.all([tools.get(name), hostRows(), adoptRunning()]);
      const merged = ToolSpecSchema.safeParse({ ...tool.spec, env: { ...tool.spec.env, ...(input.env ?? {}) } });
      if (!merged.success) throw invalid('env', merged.error.issues[0]?.message ?? 'invalid');
      const spec = merged.data;
      const timeoutSeconds = Math.min(input.timeoutSeconds ?? spec.timeoutSeconds, spec.timeoutSeconds);
      // Placement and counting happen with no await in between, so two requests cannot both take the last slot.
      const hostId = place(name, spec.placement.labels, rows);
      if ((perTool.get(name) ?? 0) >= limits.maxPerTool || (perHost.get(hostId) ?? 0) >= limits.maxPerHost) {
        throw new MacheteError('rate_limited', 'invocation limit reached');
      }
      const id = `v${randomBytes(8).toString('hex')}`;
      live.set(id, { tool: name, hostId });
      bump(perTool, name, 1);
      bump(perHost, hostId, 1);
      try {
        await db.insert(invocations).values({ id, tool: name, version: tool.version, hostId, status: 'running', actorTokenId: who.tokenId, args: input.args ?? [], timeoutSeconds });
      } catch (err) {
        release(id);
        throw err;
      }
      const req: InvocationRequest = { id, tool: name, version: tool.version, spec, args: input.args ?? [], stdin: input.stdin ?? null, timeoutSeconds, maxOutputBytes: limits.maxOutputBytes };
      if (spec.secrets.length && secrets) {
        try {
          req.secrets = await secrets(spec.secrets);
        } catch (err) {
          log.error({ err: (err as Error).message, invocation: id }, 'could not read secrets for an invocation');
          await svc.finish(id, { status: 'failed', reason: 'secrets unavailable' });
          return id;
        }
      }
      if (!transport().send(hostId, { type: 'invoke', invocation: req })) {
        await svc.finish(id, { status: 'failed', reason: 'host not connected' });
      }
      return id;
    },

    /** Resolves when the invocation has a final status (or at once if it has). */
    async wait(id: string, who: Principal): Promise<InvocationView> {
      const pending = new Promise<InvocationView>((resolve) => waiters.set(id, [...(waiters.get(id) ?? []), resolve]));
      const now = await svc.get(id, who);
      if (now.status !== 'running') {
        waiters.delete(id);
        return now;
      }
      return pending;
    },

    async get(id: string, who: Principal): Promise<InvocationView> {
      const [row] = await db.select().from(invocations).where(eq(invocations.id, id));
      // An invoker sees only its own invocations; others' do not exist for it.
      if (!row || (who.role === 'invoker' && row.actorTokenId !== who.tokenId)) throw notFound('invocation');
      return view(row);
    },

    /** Asks the agent to kill it; the agent's result (status cancelled) finishes it. */
    async cancel(id: string, who: Principal): Promise<InvocationView> {
      const cur = await svc.get(id, who);
      if (cur.status !== 'running') return cur;
      if (!cur.hostId || !transport().send(cur.hostId, { type: 'cancel', id })) {
        await svc.finish(id, { status: 'cancelled', reason: 'cancelled; host not connected' });
      }
      await events.record({ kind: 'audit', actor: `token:${who.tokenId}`, action: 'invocation.cancel', target: id, outcome: 'ok' });
      return Promise.race([svc.wait(id, who), new Promise<InvocationView>((r) => setTimeout(() => r(svc.get(id, who)), 10_000).unref())]);
    },

    /** A result from an agent. Only the host the invocation was placed on may report it. */
    async complete(hostId: string, r: InvocationResult): Promise<'ok' | 'foreign' | 'stale'> {
      // The common case in one statement: finish confines the update to the placed host.
      if (await svc.finish(r.id, r, hostId)) return 'ok';
      const [row] = await db.select({ hostId: invocations.hostId }).from(invocations).where(eq(invocations.id, r.id));
      return !row || row.hostId !== hostId ? 'foreign' : 'stale';
    },

    /** Writes the final state once (a second finish is a no-op) and wakes the waiters. */
    /** `onlyFrom`: finish only if placed on that host (an agent's report). True when this call finished it. */
    async finish(id: string, r: Partial<InvocationResult> & { status: string }, onlyFrom?: string): Promise<boolean> {
      const cap = (s: string | undefined) => (s ?? '').slice(0, limits.maxOutputBytes);
      const [row] = await db
        .update(invocations)
        .set({
          status: r.status,
          exitCode: r.exitCode ?? null,
          stdout: cap(r.stdout),
          stderr: cap(r.stderr),
          truncated: r.truncated ?? false,
          durationMs: r.durationMs ?? null,
          reason: r.reason ?? null,
          finishedAt: new Date(),
        })
        .where(and(eq(invocations.id, id), eq(invocations.status, 'running'), ...(onlyFrom === undefined ? [] : [eq(invocations.hostId, onlyFrom)])))
        .returning();
      // A report from another host must not free the slot of an invocation still running where it was placed.
      if (row || onlyFrom === undefined) release(id);
      if (!row) return false;
      const v = view(row);
      for (const w of waiters.get(id) ?? []) w(v);
      waiters.delete(id);
      void events
        .record({ kind: 'lifecycle', actor: row.hostId ? `host:${row.hostId}` : 'system', action: 'invocation.finish', target: id, outcome: r.status === 'succeeded' ? 'ok' : 'error', reason: r.reason ?? null, data: { tool: row.tool, status: r.status, exitCode: r.exitCode ?? null, durationMs: row.durationMs } })
        .catch((err) => log.error({ err }, 'recording an invocation event failed'));
      return true;
    },

    /** Deadlines, lost hosts and retention. */
    async sweep(now = Date.now()): Promise<void> {
      // Bound through the column's encoder: compared with an expression, a bare Date reaches the
      // driver unencoded, which postgres.js cannot serialize (the whole sweep failed there).
      const cutoff = sql.param(new Date(now - RESULT_GRACE_MS), invocations.createdAt);
      const overdue = await db
        .select({ id: invocations.id })
        .from(invocations)
        .where(and(eq(invocations.status, 'running'), lt(sql`${invocations.createdAt} + make_interval(secs => ${invocations.timeoutSeconds})`, cutoff)));
      for (const o of overdue) await svc.finish(o.id, { status: 'failed', reason: 'no result from the host before the deadline' });
      const down = await db.select({ id: hosts.id }).from(hosts).where(eq(hosts.status, 'down'));
      if (down.length) {
        const lost = await db.select({ id: invocations.id }).from(invocations).where(and(eq(invocations.status, 'running'), inArray(invocations.hostId, down.map((d) => d.id))));
        for (const l of lost) await svc.finish(l.id, { status: 'failed', reason: 'host lost' });
      }
      await db.delete(invocations).where(and(sql`${invocations.status} <> 'running'`, lt(invocations.finishedAt, new Date(now - limits.retentionHours * 3_600_000))));
    },
  };
  return svc;
}
export type InvocationService = ReturnType<typeof createInvocationService>;

function view(r: typeof invocations.$inferSelect): InvocationView {
  return {
    id: r.id,
    tool: r.tool,
    version: r.version,
    status: r.status,
    exitCode: r.exitCode,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    truncated: r.truncated,
    durationMs: r.durationMs,
    hostId: r.hostId,
    reason: r.reason,
    createdAt: r.createdAt.toISOString(),
    finishedAt: r.finishedAt?.toISOString() ?? null,
  };
}
