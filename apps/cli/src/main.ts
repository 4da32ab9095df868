/**
 * The `machete` CLI. `serve` and `agent` are dispatched by bin/main.ts; the client
 * commands of API.md arrive with the operator-surface issue.
 */
const USAGE = `usage: machete <command>

commands:
  serve     start the control plane (and a local agent unless MACHETE_LOCAL_AGENT=false)
  agent     start an agent (MACHETE_SERVER, MACHETE_JOIN_TOKEN[_FILE], DOCKER_HOST, …)

The HTTP API is documented at /api/docs on a running control plane.`;

export async function runCli(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(USAGE);
    return 0;
  }
  console.error(`machete: unknown command "${String(argv[0]).slice(0, 40)}"\n\n${USAGE}`);
  return 2;
}
