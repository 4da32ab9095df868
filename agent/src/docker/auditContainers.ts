import type Docker from 'dockerode';
import { auditContainer, type ContainerAudit, type ContainerFacts } from '../../../protocol/src/containerAudit.ts';
import { Labels } from '../../../protocol/src/labels.ts';

/**
 * What the live audit needs to know about every container on an engine, managed or not:
 * `docker inspect` reduced to ContainerFacts (protocol/src/containerAudit.ts judges them).
 * Part of the dockerode implementation of the docker port; reads only, never changes anything.
 */
export type Inspect = Pick<Docker.ContainerInspectInfo, 'Id' | 'Name' | 'Config' | 'State' | 'HostConfig' | 'Mounts'>;

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : 0);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** Read-only audit of containers MACHETE did not create: their `src:dst[:opts]` binds (HostConfig.Binds) count as much as structured Mounts. MACHETE itself never writes Binds. */
function bindsOf(binds: unknown): ContainerFacts['mounts'] {
  return list(binds).flatMap((b) => {
    const [source, destination] = b.split(':');
    return source && destination && source.startsWith('/') ? [{ type: 'bind', source, destination }] : [];
  });
}

export function factsFromInspect(info: Inspect): ContainerFacts {
  const hc = (info.HostConfig ?? {}) as Record<string, unknown>;
  const mounts = (info.Mounts ?? []).map((m) => ({ type: str(m.Type), source: str(m.Source), destination: str(m.Destination) }));
  const seen = new Set(mounts.map((m) => `${m.source}\0${m.destination}`));
  for (const b of bindsOf(hc.Binds)) if (!seen.has(`${b.source}\0${b.destination}`)) mounts.push(b);
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: str(info.Config?.Image),
    managed: info.Config?.Labels?.[Labels.managed] === 'true',
    running: !!info.State?.Running,
    privileged: hc.Privileged === true,
    mounts,
    networkMode: str(hc.NetworkMode),
    pidMode: str(hc.PidMode),
    ipcMode: str(hc.IpcMode),
    utsMode: str(hc.UTSMode),
    usernsMode: str(hc.UsernsMode),
    memoryBytes: Math.max(0, num(hc.Memory)),
    nanoCpus: Math.max(0, num(hc.NanoCpus)),
    cpuQuota: num(hc.CpuQuota),
    capAdd: list(hc.CapAdd),
    securityOpt: list(hc.SecurityOpt),
  };
}

/** Inspections in flight at once: fast on a busy engine without flooding it. */
const INSPECT_CONCURRENCY = 8;

/**
 * Every container on the engine (running or not), inspected with bounded concurrency, in list
 * order; one that vanished meanwhile is skipped. `deadline` bounds each engine request.
 */
export async function auditEngine(docker: Docker, deadline?: () => AbortSignal): Promise<ContainerAudit[]> {
  const bound = () => (deadline ? { abortSignal: deadline() } : {});
  const all = await docker.listContainers({ all: true, ...bound() });
  const out: (ContainerAudit | null)[] = new Array(all.length).fill(null);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < all.length; i = next++) {
      let info: Docker.ContainerInspectInfo;
      try {
        info = await docker.getContainer(all[i]!.Id).inspect(bound());
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) continue;
        throw err;
      }
      const container = factsFromInspect(info);
      out[i] = { container, findings: auditContainer(container) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(INSPECT_CONCURRENCY, all.length) }, worker));
  return out.filter((a): a is ContainerAudit => a !== null);
}
