import { and, eq, gt, inArray, ne, sql } from 'drizzle-orm';
import type { DesiredInstance, SecretValue } from '../../../../protocol/src/index.ts';
import { instances, toolVersions, type Db } from '../../../../db/src/index.ts';
import { currentRevision } from '../services/revision.ts';

const columns = {
  id: instances.id,
  tool: instances.tool,
  version: instances.version,
  kind: instances.kind,
  revision: instances.revision,
  desired: instances.desired,
  spec: toolVersions.spec,
};
type Row = { id: string; tool: string; version: number; kind: string; revision: number; desired: string; spec: DesiredInstance['spec'] | null };

function toDesired(r: Row): DesiredInstance | null {
  if (!r.spec || r.desired === 'removed') return null;
  return {
    id: r.id,
    tool: r.tool,
    version: r.version,
    kind: r.kind as DesiredInstance['kind'],
    revision: r.revision,
    desired: r.desired === 'stopped' ? 'stopped' : 'running',
    spec: r.spec,
  };
}

// The revision is read before the rows: a change committing in between shows up in the rows
// (sent early, sent again next time: harmless) but never goes missing.

/** Everything the host should run. */
export async function snapshotFor(db: Db, hostId: string): Promise<{ revision: number; instances: DesiredInstance[] }> {
  const revision = await currentRevision(db);
  const rows = await db
    .select(columns)
    .from(instances)
    .leftJoin(toolVersions, and(eq(toolVersions.tool, instances.tool), eq(toolVersions.version, instances.version)))
    .where(and(eq(instances.hostId, hostId), ne(instances.desired, 'removed')));
  return { revision, instances: rows.map(toDesired).filter((d): d is DesiredInstance => d !== null) };
}

/** What changed on the host since `from`: upserts and removals (tombstones). */
export async function deltaFor(db: Db, hostId: string, from: number): Promise<{ revision: number; upserts: DesiredInstance[]; removes: string[] }> {
  const revision = await currentRevision(db);
  const rows = await db
    .select(columns)
    .from(instances)
    .leftJoin(toolVersions, and(eq(toolVersions.tool, instances.tool), eq(toolVersions.version, instances.version)))
    .where(and(eq(instances.hostId, hostId), gt(instances.revision, from)));
  const upserts: DesiredInstance[] = [];
  const removes: string[] = [];
  for (const r of rows) {
    const d = toDesired(r);
    if (d) upserts.push(d);
    else removes.push(r.id);
  }
  return { revision: Math.max(revision, ...rows.map((r) => r.revision)), upserts, removes };
}

/** Looks up secret values by name (the secret service); missing names are left out. */
export type SecretSource = (names: readonly string[]) => Promise<SecretValue[]>;

/**
 * Adds to each instance the values of exactly the secrets its spec names. Called per host right
 * before sending, so a value travels only to the host that runs an instance needing it.
 */
export async function withSecrets(list: DesiredInstance[], source: SecretSource | undefined): Promise<DesiredInstance[]> {
  const names = [...new Set(list.flatMap((i) => i.spec.secrets))];
  if (!source || !names.length) return list;
  const byName = new Map((await source(names)).map((v) => [v.name, v]));
  return list.map((i) => (i.spec.secrets.length ? { ...i, secrets: i.spec.secrets.flatMap((n) => byName.get(n) ?? []) } : i));
}

// Host ids per delta query (one JSON parameter): bounds the size of one statement.
const HOSTS_PER_QUERY = 10_000;

/**
 * `deltaFor` for many hosts at the same resume point (a fleet-wide change): one revision read,
 * one query per 5,000 hosts instead of two queries per host, and the specs read once per tool
 * version rather than joined into every row (10,000 copies of one spec to send and parse).
 */
export async function deltasFor(db: Db, hostIds: string[], from: number): Promise<Map<string, { revision: number; upserts: DesiredInstance[]; removes: string[] }>> {
  const revision = await currentRevision(db);
  const out = new Map(hostIds.map((id) => [id, { revision, upserts: [] as DesiredInstance[], removes: [] as string[] }]));
  const { spec: _spec, ...slim } = columns;
  const rows: Array<Omit<Row, 'spec'> & { hostId: string | null }> = [];
  for (let i = 0; i < hostIds.length; i += HOSTS_PER_QUERY) {
    rows.push(
      ...(await db
        .select({ ...slim, hostId: instances.hostId })
        .from(instances)
        // One JSON parameter for the host ids, not 5,000 bind parameters for the builder and driver to handle.
        .where(and(sql`${instances.hostId} in (select jsonb_array_elements_text(${JSON.stringify(hostIds.slice(i, i + HOSTS_PER_QUERY))}::jsonb))`, gt(instances.revision, from)))),
    );
  }
  const specs = await specsOf(db, rows.filter((r) => r.desired !== 'removed'));
  for (const r of rows) {
    const d = out.get(r.hostId!)!;
    const want = toDesired({ ...r, spec: specs.get(`${r.tool}\0${r.version}`) ?? null });
    if (want) d.upserts.push(want);
    else d.removes.push(r.id);
    if (r.revision > d.revision) d.revision = r.revision;
  }
  return out;
}

/** The spec of each (tool, version) the rows name, in one query. */
async function specsOf(db: Db, rows: { tool: string; version: number }[]): Promise<Map<string, DesiredInstance['spec']>> {
  const tools = [...new Set(rows.map((r) => r.tool))];
  const specs = new Map<string, DesiredInstance['spec']>();
  if (!tools.length) return specs;
  const wanted = new Set(rows.map((r) => `${r.tool}\0${r.version}`));
  const found = await db
    .select({ tool: toolVersions.tool, version: toolVersions.version, spec: toolVersions.spec })
    .from(toolVersions)
    .where(and(inArray(toolVersions.tool, tools), inArray(toolVersions.version, [...new Set(rows.map((r) => r.version))])));
  for (const v of found) if (wanted.has(`${v.tool}\0${v.version}`)) specs.set(`${v.tool}\0${v.version}`, v.spec);
  return specs;
}
