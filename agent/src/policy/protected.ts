import path from 'node:path';
import type { AgentConfig } from '../config.ts';

/**
 * Host paths of the agent's own secrets that no tool may mount, whatever the allowlist says: the
 * engine's TLS client certificates (full control of the engine) and the state directory holding the
 * host credential. Absolute, as the policy compares them by path segment (and resolves them).
 */
export function agentProtectedPaths(config: Pick<AgentConfig, 'docker' | 'stateDir'>): string[] {
  return [config.docker.certPath, config.stateDir].filter((p): p is string => typeof p === 'string' && p !== '').map((p) => path.resolve(p));
}
