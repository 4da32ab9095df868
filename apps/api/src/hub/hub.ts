import type { WebSocket } from 'ws';
import { PROTOCOL_VERSION, type AuditReport, type Hello, type InvocationResult, type LogChunk, type LogEnd, type ServerFrame, type Status } from '../../../../protocol/src/index.ts';
import type { Db } from '../../../../db/src/index.ts';
import type { Logger } from '../logger.ts';
import type { FrameMeter } from '../metrics/metrics.ts';
import { ALL_HOSTS, type ChangeFeed } from '../services/changeFeed.ts';
import type { EventLog } from '../services/events.ts';
import type { HostService } from '../services/hosts.ts';
import type { InstanceService } from '../services/instances.ts';
import { currentRevision } from '../services/revision.ts';
import { deltaFor, deltasFor, snapshotFor, withSecrets, type SecretSource } from './desired.ts';
import { AuditRelay, type HostAuditOutcome } from './audit.ts';
import { LogRelay, type LogOpenRequest } from './logs.ts';
import { AgentSession } from './session.ts';

/** A change touching at least this many hosts is pushed with shared delta queries. */
const BATCH_MIN_HOSTS = 16;
/**
 * Changes arriving within this window are pushed together. A fleet-wide change reaches a replica as
 * many NOTIFY payloads (300 host ids each); pushed one by one they became 34 concurrent delta queries
 * for 10,000 hosts, each slower than the last (0.2 → 2.8 s). Coalesced, they are 2 queries.
 */
const COALESCE_MS = 5;
/** Close code for the session of a host an operator removed (its credential is revoked too). */
export const CLOSE_HOST_REMOVED = 4004;

export interface HubDeps {
  db: Db;
  feed: ChangeFeed;
  events: EventLog;
  hosts: HostService;
  instances: InstanceService;
  log: Logger;
  heartbeatMs: number;
  /** Send-buffer cap per agent connection (default MAX_BUFFERED_BYTES). */
  maxBufferedBytes?: number;
  /** Where agents' invocation results go (the invocation service). */
  completeInvocation: (hostId: string, result: InvocationResult) => Promise<'ok' | 'foreign' | 'stale'>;
  /** Values of the secrets an instance names, added to its frame for its own host only. */
  secrets?: SecretSource;
  /** Counts frames in, out and dropped (metrics). */
  frames?: FrameMeter;
}

/** Holds agent sessions, one per host, and keeps each agent's desired state current. */
export class AgentHub {
  private readonly sessions = new Map<string, AgentSession>();
  private readonly syncing = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeRemoved: () => void;
  private lastSeenWrite = new Map<string, number>();
  private readonly pending = new Set<string>();
  private flushTimer: NodeJS.Timeout | null = null;
  /** Log streams relayed from agents to HTTP clients. */
  private readonly logs = new LogRelay((hostId, frame) => this.send(hostId, frame));
  /** Live audit requests awaiting their agents' reports. */
  private readonly audits = new AuditRelay((hostId, frame) => this.send(hostId, frame));

  constructor(private readonly d: HubDeps) {
    this.unsubscribe = d.feed.subscribe((ids) => this.enqueue(ids));
    this.unsubscribeRemoved = d.feed.subscribeRemoved((ids) => ids.forEach((id) => void this.dropRemoved(id)));
  }

  /** A removed host's agent is sent its tombstones first (so it stops those containers), then cut off. */
  private async dropRemoved(hostId: string): Promise<void> {
    const s = this.sessions.get(hostId);
    if (!s) return;
    await this.sync(hostId);
    s.close(CLOSE_HOST_REMOVED, 'host removed');
  }

  connectedHosts(): Set<string> {
    return new Set([...this.sessions.entries()].filter(([, s]) => s.ready && !s.closed).map(([id]) => id));
  }

  /** Sends a frame to the host's live session; false when it has none. */
  send(hostId: string, frame: ServerFrame): boolean {
    const s = this.sessions.get(hostId);
    return !!s && s.ready && s.send(frame);
  }

  /** Opens a log stream on the host's agent (see hub/logs.ts); throws unavailable when it is not connected here. */
  openLogs(hostId: string, req: LogOpenRequest) {
    return this.logs.open(hostId, req);
  }

  /** Asks the host's agent to inspect every container on its engine (see hub/audit.ts); never rejects. */
  audit(hostId: string, timeoutMs: number): Promise<HostAuditOutcome> {
    return this.audits.ask(hostId, timeoutMs);
  }

  /** Takes over an authenticated socket. A newer connection for the same host wins; the older is closed. */
  attach(hostId: string, ws: WebSocket): void {
    const prev = this.sessions.get(hostId);
    const s = new AgentSession(hostId, ws, this.handlers, this.d.log, this.d.heartbeatMs, this.d.maxBufferedBytes, this.d.frames);
    this.sessions.set(hostId, s);
    if (prev) prev.close(4001, 'replaced by a newer connection');
  }

  private readonly handlers = {
    onHello: async (s: AgentSession, hello: Hello) => {
      s.send({ type: 'welcome', protocol: PROTOCOL_VERSION, hostId: s.hostId, heartbeatMs: this.d.heartbeatMs });
      // Resume: a delta from the agent's revision when it is plausible; a snapshot otherwise.
      // Either way the agent gets a frame now: it tells it its desired state is complete.
      const revision = await currentRevision(this.d.db);
      s.sentRevision = hello.lastRevision > 0 && hello.lastRevision <= revision ? hello.lastRevision : -1;
      s.mustSend = true;
      s.ready = true;
      await this.sync(s.hostId);
      await this.d.hosts.connected(s.hostId, hello);
    },
    onStatus: async (s: AgentSession, st: Status) => {
      const { foreign } = await this.d.instances.applyStatus(s.hostId, st.instances);
      // The host was removed and this replica missed the notification: cut the session off now.
      if (!(await this.d.hosts.seen(s.hostId, st.revision))) return s.close(CLOSE_HOST_REMOVED, 'host removed');
      // Replacements that now run may let a drain stop its originals.
      await this.d.hosts.afterStatus(st.instances);
      if (foreign.length) {
        await this.d.events.refused({
          actor: `host:${s.hostId}`,
          action: 'agent.status',
          outcome: 'refused',
          reason: 'reported instances not placed on this host',
          data: { instances: foreign.slice(0, 20) },
        });
      }
    },
    onInvocationResult: async (s: AgentSession, result: InvocationResult) => {
      const outcome = await this.d.completeInvocation(s.hostId, result);
      if (outcome === 'foreign') {
        await this.d.events.refused({ actor: `host:${s.hostId}`, action: 'agent.invocationResult', target: result.id, reason: 'invocation not placed on this host' });
      }
    },
    onLog: (s: AgentSession, f: LogChunk | LogEnd) => {
      // Late frames of a cancelled stream are expected; frames for streams never opened here are ignored too.
      this.logs.onFrame(s.hostId, f);
    },
    onAuditReport: (s: AgentSession, f: AuditReport) => {
      // Reports that arrive after their request timed out are expected; unknown ids are ignored too.
      this.audits.onReport(s.hostId, f);
    },
    onHeartbeat: async (s: AgentSession) => {
      const now = Date.now();
      // lastSeenAt only needs grace-period precision: write at most every 5 s per host.
      if (now - (this.lastSeenWrite.get(s.hostId) ?? 0) < 5000) return;
      this.lastSeenWrite.set(s.hostId, now);
      if (!(await this.d.hosts.seen(s.hostId))) s.close(CLOSE_HOST_REMOVED, 'host removed');
    },
    onRefused: (s: AgentSession, reason: string) => {
      void this.d.events.refused({ actor: `host:${s.hostId}`, action: 'agent.frame', reason }).catch((err) => this.d.log.warn({ err }, 'audit write failed'));
    },
    onClose: (s: AgentSession) => {
      // Streams were opened on this connection; a newer one for the host starts with none.
      this.logs.hostGone(s.hostId);
      this.audits.hostGone(s.hostId);
      if (this.sessions.get(s.hostId) === s) {
        this.sessions.delete(s.hostId);
        void this.d.hosts.seen(s.hostId).catch(() => {});
      }
    },
  };

  private async sendSnapshot(s: AgentSession): Promise<void> {
    const snap = await snapshotFor(this.d.db, s.hostId);
    const instances = await withSecrets(snap.instances, this.d.secrets);
    if (s.send({ type: 'snapshot', revision: snap.revision, instances })) s.sentRevision = snap.revision;
  }

  private async sendDelta(s: AgentSession): Promise<void> {
    const d = await deltaFor(this.d.db, s.hostId, s.sentRevision);
    if (!s.mustSend && !d.upserts.length && !d.removes.length) return;
    const upserts = await withSecrets(d.upserts, this.d.secrets);
    if (s.send({ type: 'delta', fromRevision: s.sentRevision, revision: d.revision, upserts, removes: d.removes })) s.sentRevision = d.revision;
  }

  private enqueue(ids: string[]): void {
    for (const id of ids) {
      if (id === ALL_HOSTS) for (const h of this.sessions.keys()) this.pending.add(h);
      else this.pending.add(id);
    }
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = null;
      const batch = [...this.pending];
      this.pending.clear();
      this.push(batch);
    }, COALESCE_MS);
  }

  /**
   * Pushes a change to the hosts it touched. Many idle hosts at the same resume point (a
   * fleet-wide change) share one delta query; the rest go through `sync` one by one.
   */
  private push(ids: string[]): void {
    const groups = new Map<number, AgentSession[]>();
    for (const id of ids) {
      const s = this.sessions.get(id);
      if (!s) continue;
      if (ids.length < BATCH_MIN_HOSTS || this.syncing.has(id) || !s.ready || s.closed || s.sentRevision < 0) void this.sync(id);
      else groups.set(s.sentRevision, [...(groups.get(s.sentRevision) ?? []), s]);
    }
    for (const [from, group] of groups) this.syncBatch(from, group);
  }

  private syncBatch(from: number, group: AgentSession[]): void {
    const run = async () => {
      const deltas = await deltasFor(this.d.db, group.map((s) => s.hostId), from);
      for (const s of group) {
        const d = deltas.get(s.hostId)!;
        // Replaced or resumed meanwhile: its own sync catches up.
        if (s.closed || s.sentRevision !== from || this.sessions.get(s.hostId) !== s) {
          this.dirty.add(s.hostId);
          continue;
        }
        if (!s.mustSend && !d.upserts.length && !d.removes.length) continue;
        const upserts = await withSecrets(d.upserts, this.d.secrets);
        if (s.send({ type: 'delta', fromRevision: from, revision: d.revision, upserts, removes: d.removes })) s.sentRevision = d.revision;
        s.mustSend = false;
      }
    };
    const p = run()
      .catch((err) => {
        this.d.log.error({ err, hosts: group.length }, 'desired-state push failed');
        group.forEach((s) => this.dirty.add(s.hostId));
      })
      .finally(() => {
        for (const s of group) {
          this.syncing.delete(s.hostId);
          if (this.dirty.has(s.hostId)) void this.sync(s.hostId);
        }
      });
    for (const s of group) this.syncing.set(s.hostId, p);
  }

  /** Coalescing push: at most one sync per host in flight, plus one queued. */
  private sync(hostId: string): Promise<void> {
    const inFlight = this.syncing.get(hostId);
    if (inFlight) {
      this.dirty.add(hostId);
      return inFlight;
    }
    const run = async () => {
      do {
        this.dirty.delete(hostId);
        const s = this.sessions.get(hostId);
        if (!s || !s.ready || s.closed) return;
        if (s.sentRevision < 0) await this.sendSnapshot(s);
        else await this.sendDelta(s);
        s.mustSend = false;
      } while (this.dirty.has(hostId));
    };
    const p = run()
      .catch((err) => this.d.log.error({ err, hostId }, 'desired-state push failed'))
      .finally(() => this.syncing.delete(hostId));
    this.syncing.set(hostId, p);
    return p;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.pending.clear();
    this.unsubscribeRemoved();
    this.logs.closeAll();
    this.audits.closeAll();
    for (const s of this.sessions.values()) s.close(1001, 'server shutting down');
    await Promise.allSettled(this.syncing.values());
  }
}
