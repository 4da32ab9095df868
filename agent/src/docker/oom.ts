import type Docker from 'dockerode';
import type { ObservedContainer } from './port.ts';

type Deadline = () => AbortSignal;

/** Verdicts kept per exited container; bounded. */
const MAX_REMEMBERED = 4096;
/**
 * A "not OOM-killed" verdict is asked again for this long after it was first given: the engine
 * can record the exit before the kernel's OOM event (seen on a loaded machine: a container killed
 * at its limit inspected as OOMKilled false, then true). A yes never changes.
 */
const RECHECK_NO_MS = 15_000;

/**
 * Sets `oomKilled` on the exited containers that failed. The list endpoint does not say whether the
 * kernel killed a container at its memory limit, so each failed container is inspected once and the
 * answer remembered: a reconcile pass lists every two seconds, and a crash-looping replica must not
 * cost an inspect per pass. A container gone between the list and the inspect is left unmarked.
 */
export function oomMarker(docker: Docker, deadline: Deadline): (observed: ObservedContainer[]) => Promise<void> {
  const known = new Map<string, { oom: boolean; since: number }>();
  return async (observed) => {
    // The kernel kills with SIGKILL: only an exit code of 137 can be an OOM kill.
    const failed = observed.filter((c) => c.state === 'exited' && c.exitCode === 137);
    const now = Date.now();
    await Promise.all(
      failed.map(async (c) => {
        const seen = known.get(c.id);
        let oom = seen?.oom;
        if (seen === undefined || (!seen.oom && now - seen.since < RECHECK_NO_MS)) {
          try {
            oom = (await docker.getContainer(c.id).inspect({ abortSignal: deadline() } as Docker.ContainerInspectOptions)).State?.OOMKilled === true;
          } catch {
            return; // removed meanwhile, or the engine is busy: the next pass asks again
          }
          if (!seen && known.size >= MAX_REMEMBERED) known.delete(known.keys().next().value!);
          known.set(c.id, { oom, since: seen?.since ?? now });
        }
        if (oom) c.oomKilled = true;
      }),
    );
  };
}
