import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { Labels } from '../../../protocol/src/index.ts';
import { tarFiles } from './tar.ts';
import { statusOf } from './engineError.ts';

/** Where a tool finds its secrets (API.md): one read-only file per name. */
export const SECRETS_TARGET = '/run/secrets';
/** Labels on what secrets need besides the container; never a value, only names of engine objects. */
export const SECRETS_OF_LABEL = 'machete.secrets-of';
export const ROLE_LABEL = 'machete.role';
export const SECRETS_HELPER_ROLE = 'secrets-helper';
/** Where the helper sees the volume; any path works, the helper never runs. */
const HELPER_PATH = '/machete-secrets';
/** A helper older than this with no create in flight is a leftover of a crash. */
const HELPER_MAX_AGE_MS = 60_000;

/**
 * The secret files of one container, carried from payload.ts to the port. `volume` is a named
 * volume dedicated to that container: the engine creates it with the container (the create body
 * mounts it read-only at /run/secrets), the port fills it before start and removes it with the container.
 */
export interface SecretFiles {
  volume: string;
  uid: number;
  gid: number;
  files: { name: string; value: string }[];
}

export const secretsVolumeName = (containerName: string): string => `${containerName}-secrets`;

type Deadline = () => AbortSignal;
/**
 * Fills a container's secrets volume. The engine refuses archive writes into a read-only mount
 * (and the tool's root filesystem is read-only too), so a helper container that is created but
 * never started mounts the same volume read-write and receives the tar; then it is removed. It
 * runs nothing, has no network, and is labelled so a crash leftover is swept (sweepSecrets).
 * In production the engine is a remote DinD: everything here goes through the Engine API, never
 * through the agent's own filesystem.
 */
export async function writeSecrets(docker: Docker, image: string, hostId: string, s: SecretFiles, deadline: Deadline): Promise<void> {
  const helperBody = {
    Image: image,
    Entrypoint: ['/machete-secrets-helper-never-runs'],
    Cmd: [],
    NetworkDisabled: true,
    Labels: { [Labels.host]: hostId, [ROLE_LABEL]: SECRETS_HELPER_ROLE, [SECRETS_OF_LABEL]: s.volume },
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      LogConfig: { Type: 'none', Config: {} },
      Mounts: [{ Type: 'volume', Source: s.volume, Target: HELPER_PATH, ReadOnly: false, VolumeOptions: { NoCopy: true } }],
    },
  };
  const helper = await docker.createContainer({ _body: helperBody, abortSignal: deadline() } as unknown as Docker.ContainerCreateOptions);
  try {
    const tar = tarFiles(s.files.map((f) => ({ name: f.name, data: Buffer.from(f.value, 'utf8'), mode: 0o400, uid: s.uid, gid: s.gid })));
    await helper.putArchive(tar, { path: HELPER_PATH, abortSignal: deadline() } as unknown as Record<string, unknown>);
  } finally {
    // v: anonymous volumes an image VOLUME gave the helper go too; the named secrets volume stays.
    await helper.remove({ force: true, v: true, abortSignal: deadline() }).catch((err: unknown) => {
      if (statusOf(err) !== 404) throw err;
    });
  }
}

/** Removes a secrets volume; gone already, or still in use by a container being removed, is not an error. */
export async function removeSecretsVolume(docker: Docker, name: string, deadline: Deadline): Promise<void> {
  try {
    await docker.getVolume(name).remove({ abortSignal: deadline() } as unknown as Record<string, unknown>);
  } catch (err) {
    const s = statusOf(err);
    if (s !== 404 && s !== 409) throw err;
  }
}

/** The secrets volume a container mounts, from its inspect `Mounts` (undefined when it has none). */
export function secretsVolumeOf(mounts: readonly { Type?: string; Name?: string; Destination?: string }[] | undefined): string | undefined {
  return mounts?.find((m) => m.Type === 'volume' && m.Destination === SECRETS_TARGET && typeof m.Name === 'string' && m.Name.endsWith('-secrets'))?.Name;
}

/**
 * Garbage collection after crashes: dangling secrets volumes of this host (their container is gone)
 * and helpers older than a minute. Returns how many objects were removed.
 */
export async function sweepSecrets(docker: Docker, hostId: string, deadline: Deadline, now = Date.now()): Promise<number> {
  let removed = 0;
  const vols = await docker.listVolumes({ filters: { dangling: ['true'], label: [`${Labels.host}=${hostId}`, SECRETS_OF_LABEL] }, abortSignal: deadline() } as unknown as Record<string, unknown>);
  for (const v of vols.Volumes ?? []) {
    await removeSecretsVolume(docker, v.Name, deadline);
    removed++;
  }
  const helpers = await docker.listContainers({ all: true, filters: { label: [`${Labels.host}=${hostId}`, `${ROLE_LABEL}=${SECRETS_HELPER_ROLE}`] }, abortSignal: deadline() } as Docker.ContainerListOptions);
  for (const h of helpers) {
    if (now - h.Created * 1000 < HELPER_MAX_AGE_MS) continue;
    await docker.getContainer(h.Id).remove({ force: true, abortSignal: deadline() }).catch(() => {});
    removed++;
  }
  return removed;
}

/**
 * Value of the `machete.secrets` label: a hash of the names and versions the instance needs
 * (0 for a value the host did not get). Never of values: a label is readable by anyone who can
 * inspect the container, and a hash of a short value can be brute-forced.
 */
export function secretsDigest(names: readonly string[], values: readonly { name: string; version: number }[] | undefined): string | undefined {
  if (!names.length) return undefined;
  const versions = new Map((values ?? []).map((v) => [v.name, v.version]));
  const canonical = JSON.stringify([...new Set(names)].sort().map((n) => [n, versions.get(n) ?? 0]));
  return createHash('sha256').update(canonical).digest('hex');
}
