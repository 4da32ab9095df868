import { loadAgentConfig, type AgentConfig } from '../agent/src/config.ts';
import { loadConfig, type ApiConfig } from '../apps/api/src/config.ts';

/** The launcher's one read of the environment, handed to each component's own loader. */
export function loadServeConfig(): { api: ApiConfig; agentEnv: Record<string, string | undefined> } {
  return { api: loadConfig(process.env), agentEnv: { ...process.env } };
}

export function loadStandaloneAgentConfig(): AgentConfig {
  return loadAgentConfig(process.env);
}
