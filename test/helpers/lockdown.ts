import type Docker from 'dockerode';
import { expect } from 'vitest';

// SECURITY-CASES 14 as one check, so "every created container" is proven by the same assertions for
// each kind MACHETE creates (replica, invocation, warm sandbox, on `none` or an isolated network):
// test/adversarial/resources.test.ts inspects one of each on the real engine and runs them all here.

const MIB = 1024 * 1024;

export interface ExpectedLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
}

/** What `docker inspect` must show on any container MACHETE created: no privilege, limits, no host namespace, bounded logs, no default bridge. */
export function expectLockedDown(info: Docker.ContainerInspectInfo, limits: ExpectedLimits): void {
  const hc = info.HostConfig as Docker.HostConfig & { CgroupnsMode?: string };
  const what = `${info.Config.Labels?.['machete.kind'] ?? 'container'} ${info.Name}`;
  expect(hc.CapDrop, what).toEqual(['ALL']);
  expect(hc.CapAdd ?? [], what).toEqual([]);
  expect(hc.SecurityOpt, what).toEqual(expect.arrayContaining([expect.stringMatching(/^no-new-privileges(:true)?$/)]));
  expect(hc.Privileged, what).toBe(false);
  expect(hc.ReadonlyRootfs, what).toBe(true);
  expect(hc.Memory, what).toBe(limits.memoryMb * MIB);
  expect(hc.MemorySwap, what).toBe(limits.memoryMb * MIB);
  expect(hc.NanoCpus, what).toBe(limits.cpus * 1e9);
  expect(hc.PidsLimit, what).toBe(limits.pids);
  // No host namespaces: each of these is the engine's private default.
  expect(hc.PidMode, what).toBe('');
  expect(hc.IpcMode, what).toBe('private');
  expect(hc.UTSMode, what).toBe('');
  expect(hc.UsernsMode, what).toBe('');
  expect(hc.CgroupnsMode, what).toBe('private');
  expect(hc.Devices ?? [], what).toEqual([]);
  expect(hc.Binds ?? [], what).toEqual([]);
  expect(hc.NetworkMode, what).not.toMatch(/^(default|bridge|host|container:.*)$/);
  expect(Object.keys(info.NetworkSettings.Networks), what).not.toContain('bridge');
  expect(Object.keys(info.NetworkSettings.Networks), what).not.toContain('host');
  expect(info.Config.User, what).toBe('65534:65534');
  expectBoundedLog(hc.LogConfig, what);
}

/** Either no engine log at all, or a rotated one: a tool can never fill the engine's disk through its log. */
function expectBoundedLog(log: Docker.HostConfig['LogConfig'], what: string): void {
  if (log?.Type === 'none') return;
  expect(log?.Type, what).toMatch(/^(json-file|local)$/);
  expect(log?.Config, what).toMatchObject({ 'max-size': expect.stringMatching(/^\d+[kmg]?$/), 'max-file': expect.stringMatching(/^\d+$/) });
}
