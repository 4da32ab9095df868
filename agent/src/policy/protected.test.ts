import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentProtectedPaths } from './protected.ts';

describe('agentProtectedPaths', () => {
  it('protects the engine certificates and the state directory, as absolute paths', () => {
    const docker = { dockerHost: 'tcp://engine:2376', tlsVerify: true, certPath: 'certs' };
    expect(agentProtectedPaths({ docker, stateDir: '/var/lib/machete-agent' })).toEqual([path.resolve('certs'), '/var/lib/machete-agent']);
  });

  it('protects only the state directory when the engine has no certificates', () => {
    const docker = { dockerHost: 'unix:///var/run/docker.sock', tlsVerify: false, certPath: null };
    expect(agentProtectedPaths({ docker, stateDir: '/s' })).toEqual(['/s']);
  });
});
