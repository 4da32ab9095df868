import path from 'node:path';
import { loadAgentConfig } from '../agent/src/config.ts';
import { startAgent } from '../agent/src/main.ts';
import { startServer } from '../apps/api/src/server.ts';
import { loadServeConfig, loadStandaloneAgentConfig } from './config.ts';

/**
 * Composition root: `serve` (control plane + local agent), `agent` (an agent alone),
 * everything else goes to the CLI.
 */
export async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  if (cmd === 'serve') return serve();
  if (cmd === 'agent') return agent();
  const { runCli } = await import('../apps/cli/src/main.ts');
  return runCli(argv);
}

async function serve(): Promise<number> {
  let cfg;
  try {
    cfg = loadServeConfig();
  } catch (err) {
    console.error(`machete: ${(err as Error).message}`);
    return 1;
  }
  let server;
  try {
    server = await startServer(cfg.api);
  } catch (err) {
    console.error(`machete: cannot start: ${(err as Error).message}`);
    return 1;
  }
  let agent: Awaited<ReturnType<typeof startAgent>> | null = null;
  if (cfg.api.localAgent) {
    const agentCfg = loadAgentConfig(cfg.agentEnv, {
      server: server.url,
      stateDir: path.join(cfg.api.dataDir, 'agent'),
      joinToken: await server.mintJoinToken(),
    });
    try {
      agent = await startAgent(agentCfg, { log: server.log.child({ component: 'agent' }) });
    } catch (err) {
      // The control plane stays useful without its local agent (remote agents can still join).
      server.log.error({ err: (err as Error).message }, 'local agent did not start');
    }
  }
  await untilSignal();
  server.log.info('shutting down');
  await agent?.stop();
  await server.close();
  exitSoon();
  return 0;
}

async function agent(): Promise<number> {
  let cfg;
  try {
    cfg = loadStandaloneAgentConfig();
  } catch (err) {
    console.error(`machete agent: ${(err as Error).message}`);
    return 2;
  }
  let a;
  try {
    a = await startAgent(cfg);
  } catch (err) {
    console.error(`machete agent: ${(err as Error).message}`);
    return 1;
  }
  await untilSignal();
  await a.stop();
  exitSoon();
  return 0;
}

/**
 * After a clean shutdown the process should end by itself; if a driver still holds a socket
 * (postgres.js has kept pool connections open after end() once a fleet had hammered it), it
 * ends anyway after a short grace instead of hanging under a supervisor's SIGTERM.
 */
function exitSoon(): void {
  setTimeout(() => process.exit(), 2_000).unref();
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
