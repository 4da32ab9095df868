import type Docker from 'dockerode';
import { Labels } from '../../../protocol/src/index.ts';
import { verifyPinned } from '../policy/resolve.ts';
import type { CreatePayload } from './port.ts';
import { removeSecretsVolume, writeSecrets } from './secrets.ts';

type Deadline = () => AbortSignal;

/**
 * What must happen between a container's create and its start, for the dockerode port and the
 * invocation runner alike: its secrets volume is filled, then the resolved mount sources are
 * verified once more (policy/resolve.ts) as the last step before the caller starts it. On any
 * failure the container and its volume are removed, so nothing half-prepared can ever be started.
 */
export async function prepareCreated(docker: Docker, id: string, payload: CreatePayload, deadline: Deadline): Promise<void> {
  try {
    if (payload.secrets) await writeSecrets(docker, String(payload.body.Image), payload.body.Labels[Labels.host] ?? '', payload.secrets, deadline);
    const changed = payload.pinnedSources ? verifyPinned(payload.pinnedSources) : undefined;
    if (changed) throw new Error(`refused by agent policy: ${changed}`);
  } catch (err) {
    await docker.getContainer(id).remove({ force: true, abortSignal: deadline() }).catch(() => {});
    if (payload.secrets) await removeSecretsVolume(docker, payload.secrets.volume, deadline).catch(() => {});
    throw err;
  }
}
