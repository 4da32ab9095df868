/**
 * Pure placement for one tool: which instances to add, place, move to a new version or remove
 * so that `replicas` run on eligible hosts, spread as evenly as possible.
 */
export interface CandidateHost {
  id: string;
  status: string;
  schedulable: boolean;
  labels: Record<string, string>;
  /** Live instances of any tool on the host (tie-breaker for spreading). */
  load: number;
}
export interface LiveInstance {
  id: string;
  hostId: string | null;
  version: number;
}
export interface ToolPlanInput {
  replicas: number;
  version: number;
  placementLabels: Record<string, string>;
  instances: LiveInstance[];
  hosts: CandidateHost[];
}
export interface ToolPlan {
  /** New instances; hostId null means pending (nothing fits). */
  add: { hostId: string | null }[];
  /** Pending instances that now have a host. */
  place: { id: string; hostId: string }[];
  /** Instances to move to the target version in place. */
  update: string[];
  remove: string[];
  pendingReason: string | null;
}

export function eligible(h: CandidateHost, labels: Record<string, string>): boolean {
  if (h.status !== 'ready' || !h.schedulable) return false;
  return Object.entries(labels).every(([k, v]) => h.labels[k] === v);
}

export function planTool(input: ToolPlanInput): ToolPlan {
  const hosts = input.hosts.filter((h) => eligible(h, input.placementLabels));
  const eligibleIds = new Set(hosts.map((h) => h.id));
  const perHost = new Map<string, number>(hosts.map((h) => [h.id, 0]));
  for (const i of input.instances) if (i.hostId && perHost.has(i.hostId)) perHost.set(i.hostId, perHost.get(i.hostId)! + 1);
  const load = new Map(hosts.map((h) => [h.id, h.load]));

  // Surplus goes first from pending, then from hosts no longer eligible, then from the most crowded host.
  const remove: string[] = [];
  const live = [...input.instances].sort((a, b) => a.id.localeCompare(b.id));
  let surplus = live.length - input.replicas;
  const take = (pred: (i: LiveInstance) => boolean) => {
    for (const i of live) {
      if (surplus <= 0) return;
      if (!remove.includes(i.id) && pred(i)) {
        remove.push(i.id);
        surplus--;
        if (i.hostId && perHost.has(i.hostId)) perHost.set(i.hostId, perHost.get(i.hostId)! - 1);
      }
    }
  };
  take((i) => i.hostId === null);
  take((i) => !eligibleIds.has(i.hostId!));
  while (surplus > 0) {
    const crowded = [...perHost.entries()].sort((a, b) => b[1] - a[1] || b[0].localeCompare(a[0]))[0];
    if (!crowded) break;
    take((i) => i.hostId === crowded[0]);
  }

  const pick = (): string | null => {
    let best: string | null = null;
    for (const h of hosts) {
      if (best === null) best = h.id;
      else {
        const a = perHost.get(h.id)!, b = perHost.get(best)!;
        if (a < b || (a === b && (load.get(h.id)! < load.get(best)! || (load.get(h.id) === load.get(best) && h.id < best)))) best = h.id;
      }
    }
    if (best) {
      perHost.set(best, perHost.get(best)! + 1);
      load.set(best, load.get(best)! + 1);
    }
    return best;
  };

  const kept = live.filter((i) => !remove.includes(i.id));
  const place: { id: string; hostId: string }[] = [];
  for (const i of kept) {
    if (i.hostId !== null) continue;
    const hostId = pick();
    if (hostId) place.push({ id: i.id, hostId });
  }
  const add: { hostId: string | null }[] = [];
  for (let n = kept.length; n < input.replicas; n++) add.push({ hostId: pick() });
  const update = kept.filter((i) => i.version !== input.version).map((i) => i.id);
  const pendingReason = hosts.length === 0 ? 'no ready, schedulable host matches the placement labels' : null;
  return { add, place, update, remove, pendingReason };
}
