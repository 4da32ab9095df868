/**
 * Pure placement for one tool: which instances to add, place, remove or declare lost so that
 * `replicas` run on eligible hosts with room, spread as evenly as possible. Which version they
 * run is the rollout's decision (rollout.ts): placement adds at `version` and never changes one.
 */
import { SpreadPicker } from './spread.ts';

export interface Resources {
  cpus: number;
  memoryMb: number;
}
export interface CandidateHost {
  id: string;
  status: string;
  schedulable: boolean;
  labels: Record<string, string>;
  /** Live instances of any tool on the host (tie-breaker for spreading). */
  load: number;
  /** What the agent reported; zero in both means unknown, and then nothing is counted against it. */
  capacity?: Resources;
  /** Reserved by live instances of any tool on the host (this tool's included). */
  allocated?: Resources;
}
export interface LiveInstance {
  id: string;
  hostId: string | null;
  version: number;
  /** Observed state; a replacement counts as serving only once it is `running`. */
  state?: string;
  reason?: string | null;
}
export interface ToolPlanInput {
  replicas: number;
  placementLabels: Record<string, string>;
  /** What one replica reserves (resources.cpus, resources.memoryMb); absent: nothing is counted. */
  resources?: Resources;
  instances: LiveInstance[];
  hosts: CandidateHost[];
}
export interface ToolPlan {
  /** New instances; hostId null means pending (nothing fits). */
  add: { hostId: string | null }[];
  /** Pending instances that now have a host. */
  place: { id: string; hostId: string }[];
  remove: string[];
  /** On a down (or vanished) host: no longer counted, replaced elsewhere. */
  lost: string[];
  /** Instances still on a draining host because not enough replacements run yet. */
  leaving: string[];
  /** Instances on a draining host removed now (also in `remove`): their replacements run. */
  evacuated: string[];
  /** Pending instances that stay pending, with the reason when it changed. */
  repend: { id: string; reason: string }[];
  pendingReason: string | null;
}

export function eligible(h: CandidateHost, labels: Record<string, string>): boolean {
  if (h.status !== 'ready' || !h.schedulable) return false;
  return Object.entries(labels).every(([k, v]) => h.labels[k] === v);
}

const known = (c?: Resources): c is Resources => !!c && (c.cpus > 0 || c.memoryMb > 0);
// Float sums of CPU shares (0.1 + 0.2) must not refuse a replica that fits exactly.
const EPS = 1e-9;

/** Free room per eligible host, kept current as replicas are picked. */
class Room {
  private readonly free = new Map<string, Resources | null>();
  constructor(hosts: CandidateHost[], private readonly need: Resources | undefined) {
    for (const h of hosts) {
      this.free.set(h.id, known(h.capacity) ? { cpus: h.capacity.cpus - (h.allocated?.cpus ?? 0), memoryMb: h.capacity.memoryMb - (h.allocated?.memoryMb ?? 0) } : null);
    }
  }
  fits(id: string): boolean {
    const f = this.free.get(id);
    if (!f || !this.need) return true;
    return f.cpus + EPS >= this.need.cpus && f.memoryMb >= this.need.memoryMb;
  }
  take(id: string): void {
    const f = this.free.get(id);
    if (f && this.need) this.free.set(id, { cpus: f.cpus - this.need.cpus, memoryMb: f.memoryMb - this.need.memoryMb });
  }
  /** Most free room among hosts that count capacity (for the pending reason). */
  largest(): Resources | null {
    let best: Resources | null = null;
    for (const f of this.free.values()) if (f && (!best || f.cpus > best.cpus || (f.cpus === best.cpus && f.memoryMb > best.memoryMb))) best = f;
    return best;
  }
}

function classify(input: ToolPlanInput) {
  const byId = new Map(input.hosts.map((h) => [h.id, h]));
  const lost: string[] = [];
  const leaving: LiveInstance[] = [];
  const active: LiveInstance[] = [];
  for (const i of [...input.instances].sort((a, b) => a.id.localeCompare(b.id))) {
    const h = i.hostId === null ? null : byId.get(i.hostId);
    if (i.hostId !== null && (!h || h.status === 'down')) lost.push(i.id);
    else if (h?.status === 'draining') leaving.push(i);
    else active.push(i);
  }
  return { lost, leaving, active };
}

/** Surplus goes first from pending, then from hosts no longer eligible, then from the most crowded host. */
function chooseSurplus(active: LiveInstance[], replicas: number, eligibleIds: Set<string>, perHost: Map<string, number>): Set<string> {
  const remove = new Set<string>();
  let surplus = active.length - replicas;
  const take = (pred: (i: LiveInstance) => boolean) => {
    for (const i of active) {
      if (surplus <= 0) return;
      if (!remove.has(i.id) && pred(i)) {
        remove.add(i.id);
        surplus--;
        if (i.hostId && perHost.has(i.hostId)) perHost.set(i.hostId, perHost.get(i.hostId)! - 1);
      }
    }
  };
  take((i) => i.hostId === null);
  take((i) => !eligibleIds.has(i.hostId!));
  while (surplus > 0) {
    const crowded = [...perHost.entries()].sort((a, b) => b[1] - a[1] || b[0].localeCompare(a[0]))[0];
    if (!crowded || crowded[1] <= 0) break;
    take((i) => i.hostId === crowded[0]);
  }
  return remove;
}

function pendingReasonFor(input: ToolPlanInput, eligibleCount: number, room: Room): string {
  const labels = Object.entries(input.placementLabels).map(([k, v]) => `${k}=${v}`).join(',');
  if (eligibleCount === 0) return `no ready, schedulable host matches the placement labels${labels ? ` (${labels})` : ''}`;
  const need = input.resources!;
  const best = room.largest();
  const most = best ? `; most free on one host: ${Math.max(0, round(best.cpus))} CPU, ${Math.max(0, best.memoryMb)} MB` : '';
  return `insufficient capacity: no eligible host has ${need.cpus} CPU and ${need.memoryMb} MB free (${eligibleCount} eligible)${most}`;
}
const round = (n: number) => Math.round(n * 1000) / 1000;

export function planTool(input: ToolPlanInput): ToolPlan {
  const hosts = input.hosts.filter((h) => eligible(h, input.placementLabels));
  const eligibleIds = new Set(hosts.map((h) => h.id));
  const { lost, leaving, active } = classify(input);
  const perHost = new Map<string, number>(hosts.map((h) => [h.id, 0]));
  for (const i of active) if (i.hostId && perHost.has(i.hostId)) perHost.set(i.hostId, perHost.get(i.hostId)! + 1);
  const room = new Room(hosts, input.resources);

  const removed = chooseSurplus(active, input.replicas, eligibleIds, perHost);
  const picker = new SpreadPicker(
    hosts.map((h) => ({ id: h.id, mine: perHost.get(h.id)!, load: h.load })),
    (id) => room.fits(id),
    (id) => room.take(id),
  );
  const pick = () => picker.pick();

  const kept = active.filter((i) => !removed.has(i.id));
  const place: { id: string; hostId: string }[] = [];
  const stillPending: LiveInstance[] = [];
  for (const i of kept) {
    if (i.hostId !== null) continue;
    const hostId = pick();
    if (hostId) place.push({ id: i.id, hostId });
    else stillPending.push(i);
  }
  const add: { hostId: string | null }[] = [];
  for (let n = kept.length; n < input.replicas; n++) add.push({ hostId: pick() });
  const unplaced = stillPending.length > 0 || add.some((a) => a.hostId === null);
  const pendingReason = unplaced ? pendingReasonFor(input, hosts.length, room) : null;
  const repend = stillPending.filter((i) => i.reason !== pendingReason).map((i) => ({ id: i.id, reason: pendingReason! }));

  // Drain: an instance on a draining host goes only once a replacement elsewhere is running.
  const serving = kept.filter((i) => i.hostId !== null && i.state === 'running').length;
  const canGo = Math.max(0, Math.min(leaving.length, serving + leaving.length - input.replicas));
  const evacuated = leaving.slice(0, canGo).map((i) => i.id);
  const remove = [...removed, ...evacuated];
  return { add, place, remove, lost, leaving: leaving.slice(canGo).map((i) => i.id), evacuated, repend, pendingReason };
}
