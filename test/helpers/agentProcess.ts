import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitFor, type TestCluster } from './cluster.ts';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * `machete agent` as its own OS process (bin/machete.mjs), so a test can crash it with SIGKILL:
 * no stop() runs, nothing is flushed, only what the engine and the state dir hold survives.
 */
export class AgentProcess {
  private proc: ChildProcess | null = null;
  /** Everything the process wrote, for failure messages. */
  output = '';

  constructor(
    private readonly cluster: TestCluster,
    private readonly opts: { dockerSocket: string; stateDir: string; hostName: string },
  ) {}

  /** Starts the process; the join token is only needed until the state dir holds a credential. */
  async start(): Promise<void> {
    const joinToken = await this.cluster.server!.mintJoinToken();
    const p = spawn(process.execPath, [path.join(root, 'bin/machete.mjs'), 'agent'], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        MACHETE_SERVER: this.cluster.url,
        MACHETE_JOIN_TOKEN: joinToken,
        DOCKER_HOST: `unix://${this.opts.dockerSocket}`,
        MACHETE_STATE_DIR: this.opts.stateDir,
        MACHETE_HOST_NAME: this.opts.hostName,
        MACHETE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout!.on('data', (d) => (this.output += d));
    p.stderr!.on('data', (d) => (this.output += d));
    this.proc = p;
  }

  /** Resolves with the host id once the control plane lists this agent's host as ready. */
  async ready(): Promise<string> {
    const host = await waitFor(
      async () => {
        const p = this.proc;
        if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`agent process not running:\n${this.output.slice(-2000)}`);
        const r = await this.cluster.api('GET', '/api/v1/hosts');
        return (r.body as Array<{ id: string; name: string; status: string }>).find((h) => h.name === this.opts.hostName && h.status === 'ready');
      },
      `agent ${this.opts.hostName} ready`,
      60_000,
      200,
    );
    return host.id;
  }

  /** Sends the signal and resolves once the process is gone. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    await exited;
  }
}
