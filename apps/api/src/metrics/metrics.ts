import { sql } from 'drizzle-orm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AgentFrameSchema, ServerFrameSchema, type ReconcileReport } from '../../../../protocol/src/index.ts';
import { rowsOf, type Db } from '../../../../db/src/index.ts';
import type { EventLog } from '../services/events.ts';

/**
 * Prometheus instruments of one control plane. One registry per app instance: tests
 * build several apps in one process, and prom-client's global registry would mix them.
 * Labels are bounded sets only (route patterns, states, frame types): never an id.
 */
export interface Metrics {
  readonly registry: Registry;
  /** One finished HTTP request; `route` is the matched pattern, never the raw path. */
  observeHttp(method: string, route: string, status: number, seconds: number): void;
  /** What the agent hub sees on its WebSocket connections. */
  readonly frames: FrameMeter;
  /** Stops following events (server shutdown). */
  stop(): void;
}

export interface FrameMeter {
  received(type: string): void;
  sent(type: string): void;
  /** A frame refused on the way in, or not sent, with a short fixed reason. */
  dropped(direction: 'in' | 'out', reason: string): void;
  /** Reconcile passes an agent reports with its heartbeat. */
  reconcile?(report: ReconcileReport): void;
}

export interface MetricsSources {
  db: Db;
  events: EventLog;
  connectedHosts(): Set<string>;
  /** Whether this replica is the housekeeping leader (absent: not reported). */
  isLeader?(): boolean;
}

/** Every frame type of the protocol, both ways: the `type` label stays a closed set as the protocol grows. */
const FRAME_TYPES = new Set([...AgentFrameSchema.options, ...ServerFrameSchema.options].map((o) => String(o.shape.type.value)));
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const INVOCATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const RECONCILE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function createMetrics(src: MetricsSources): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const http = new Histogram({ name: 'machete_http_request_duration_seconds', help: 'HTTP request durations by method, route pattern and status', labelNames: ['method', 'route', 'status'] as const, buckets: HTTP_BUCKETS, registers });
  new Gauge({
    name: 'machete_connected_agents', help: 'Agents with a live WebSocket connection to this control plane', registers,
    collect() {
      this.set(src.connectedHosts().size);
    },
  });
  if (src.isLeader) {
    const isLeader = src.isLeader;
    new Gauge({
      name: 'machete_leader', help: '1 while this control-plane replica holds the scheduler/housekeeping leader lock, else 0', registers,
      collect() {
        this.set(isLeader() ? 1 : 0);
      },
    });
  }
  instancesByState(src.db, registers);
  hostsByStatus(src.db, registers);

  const framesIn = new Counter({ name: 'machete_ws_frames_received_total', help: 'WebSocket frames received from agents, by frame type', labelNames: ['type'] as const, registers });
  const framesOut = new Counter({ name: 'machete_ws_frames_sent_total', help: 'WebSocket frames sent to agents, by frame type', labelNames: ['type'] as const, registers });
  const drops = new Counter({ name: 'machete_ws_frames_dropped_total', help: 'WebSocket frames refused (in) or not sent (out), by reason', labelNames: ['direction', 'reason'] as const, registers });
  const frameType = (t: string) => (FRAME_TYPES.has(t) ? t : 'other');
  // Passes run on the agents; each heartbeat carries those since the last one. No host label:
  // per-host series would grow with the fleet; the agent's own log names the host that fails.
  const passSeconds = new Histogram({ name: 'machete_reconcile_pass_duration_seconds', help: 'Reconcile pass durations reported by the agents connected to this control plane (the latest 256 per heartbeat)', buckets: RECONCILE_BUCKETS, registers });
  const passErrors = new Counter({ name: 'machete_reconcile_errors_total', help: 'Reconcile passes that failed (engine errors), reported by the agents connected to this control plane', registers });

  const invocations = new Counter({ name: 'machete_invocations_total', help: 'Finished invocations by final status', labelNames: ['status'] as const, registers });
  const invocationSeconds = new Histogram({ name: 'machete_invocation_duration_seconds', help: 'Run time of finished invocations as reported by the agent, by status', labelNames: ['status'] as const, buckets: INVOCATION_BUCKETS, registers });
  const events = new Counter({ name: 'machete_events_total', help: 'Audit and lifecycle events recorded by this control plane, by kind and outcome', labelNames: ['kind', 'outcome'] as const, registers });
  // Events are what every finished invocation and every refusal already produce: counting them
  // here keeps the services free of metrics code. EventLog.follow is local to this process.
  const off = src.events.follow((e) => {
    events.inc({ kind: e.kind, outcome: e.outcome });
    if (e.action !== 'invocation.finish') return;
    const data = (e.data ?? {}) as { status?: unknown; durationMs?: unknown };
    const status = typeof data.status === 'string' ? data.status : 'unknown';
    invocations.inc({ status });
    if (typeof data.durationMs === 'number') invocationSeconds.observe({ status }, data.durationMs / 1000);
  });

  return {
    registry,
    observeHttp(method, route, status, seconds) {
      http.observe({ method: METHODS.has(method) ? method : 'OTHER', route, status: String(status) }, seconds);
    },
    frames: {
      received: (t) => framesIn.inc({ type: frameType(t) }),
      sent: (t) => framesOut.inc({ type: frameType(t) }),
      dropped: (direction, reason) => drops.inc({ direction, reason }),
      reconcile: (r) => {
        for (const sec of r.seconds) passSeconds.observe(sec);
        if (r.errors) passErrors.inc(r.errors);
      },
    },
    stop: off,
  };
}

/** Live (not removed) instances by kind and observed state, read from the database at scrape time. */
function instancesByState(db: Db, registers: Registry[]): void {
  const g = new Gauge({
    name: 'machete_instances', help: 'Instances that are not removed, by kind and observed state (same value on every replica)', labelNames: ['kind', 'state'] as const, registers,
    async collect() {
      const rows = await safeRows<{ kind: string; state: string; n: number }>(db, sql`select kind, state, count(*)::int as n from instances where desired <> 'removed' group by kind, state`);
      if (!rows) return;
      g.reset();
      for (const r of rows) g.set({ kind: r.kind, state: r.state }, Number(r.n));
    },
  });
}

function hostsByStatus(db: Db, registers: Registry[]): void {
  const g = new Gauge({
    name: 'machete_hosts', help: 'Known hosts by status (same value on every replica)', labelNames: ['status'] as const, registers,
    async collect() {
      const rows = await safeRows<{ status: string; n: number }>(db, sql`select status, count(*)::int as n from hosts group by status`);
      if (!rows) return;
      g.reset();
      for (const r of rows) g.set({ status: r.status }, Number(r.n));
    },
  });
}

/** A scrape must not fail because the database does not answer: the gauges keep their last values. */
async function safeRows<T>(db: Db, q: ReturnType<typeof sql>): Promise<T[] | null> {
  try {
    return rowsOf<T>(await db.execute(q));
  } catch {
    return null;
  }
}
