// One dockerd and one PostgreSQL for the whole vitest run. Tests read their
// addresses with `inject('dockerSocket')`, `inject('pgUrl')`, `inject('testImage')`.
// A failure here fails the run: tests that need real engines are never skipped.
import type { TestProject } from 'vitest/node';
import { startDockerd, type Dockerd } from './harness/dockerd.ts';
import { ensureTestImage } from './harness/image.ts';
import { startPostgres, type Postgres } from './harness/postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Unix socket of the run's dockerd (use as dockerode `socketPath`). */
    dockerSocket: string;
    /** `postgres://postgres@127.0.0.1:PORT/postgres` of the run's cluster. */
    pgUrl: string;
    /** Offline-built busybox image present in the run's dockerd. */
    testImage: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [docker, pg] = await Promise.allSettled([startDockerd({ name: 'main' }), startPostgres()]);
  const started: Array<Dockerd | Postgres> = [];
  if (docker.status === 'fulfilled') started.push(docker.value);
  if (pg.status === 'fulfilled') started.push(pg.value);
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(started.map((s) => s.stop()));
  };

  try {
    if (docker.status === 'rejected') throw wrap('dockerd', docker.reason);
    if (pg.status === 'rejected') throw wrap('PostgreSQL', pg.reason);
    const testImage = await ensureTestImage(docker.value.socketPath);
    project.provide('dockerSocket', docker.value.socketPath);
    project.provide('pgUrl', pg.value.url);
    project.provide('testImage', testImage);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

function wrap(what: string, reason: unknown): Error {
  const msg = reason instanceof Error ? reason.message : String(reason);
  return new Error(`globalSetup: could not start ${what}: ${msg}`, { cause: reason });
}
