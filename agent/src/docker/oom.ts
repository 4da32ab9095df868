import type Docker from 'dockerode';
import type { ObservedContainer } from './port.ts';

type Deadline = () => AbortSignal;

/** Verdicts kept per exited container (an exited container's OOMKilled never changes); bounded. */
const MAX_REMEMBERED = 4096;

/**
 * Sets `oomKilled` on the exited containers that failed. The list endpoint does not say whether the
 * kernel killed a container at its memory limit, so each failed container is inspected once and the
 * answer remembered: a reconcile pass lists every two seconds, and a crash-looping replica must not
 * cost an inspect per pass. A container gone between the list and the inspect is left unmarked.
 */
export function oomMarker(docker: Docker, deadline: Deadline): (observed: ObservedContainer[]) => Promise<void> {
  const known = new Map<string, boolean>();
  return async (observed) => {
    const failed = observed.filter((c) => c.state === 'exited' && c.exitCode !== 0);
    await Promise.all(
      failed.map(async (c) => {
        let oom = known.get(c.id);
        if (oom === undefined) {
          try {
            oom = (await docker.getContainer(c.id).inspect({ abortSignal: deadline() } as Docker.ContainerInspectOptions)).State?.OOMKilled === true;
          } catch {
            return; // removed meanwhile, or the engine is busy: the next pass asks again
          }
          if (known.size >= MAX_REMEMBERED) known.delete(known.keys().next().value!);
          known.set(c.id, oom);
        }
        if (oom) c.oomKilled = true;
      }),
    );
  };
}
