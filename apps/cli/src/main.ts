import { CommanderError } from 'commander';
import { processEnv } from './config.ts';
import { createContext } from './context.ts';
import { CliError, EXIT, type CliIo } from './io.ts';
import { buildProgram } from './program.ts';

/**
 * The `machete` CLI (everything but `serve` and `agent`, which bin/main.ts starts).
 * Streams, environment and the interrupt signal are injectable so tests run it in-process.
 * Returns the exit code: 0 ok, 1 failed, 2 usage.
 */
export async function runCli(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const interrupt = io.signal ? null : onInterrupt();
  const full: CliIo = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stdin: io.stdin ?? process.stdin,
    env: io.env ?? processEnv(),
    signal: io.signal ?? interrupt!.signal,
  };
  try {
    const program = buildProgram(createContext(full));
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT.ok;
    }
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    // commander has already printed its message (or the help).
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliError) {
      // An empty message carries only an exit code (a tool's own, passed through by invoke).
      if (err.message) full.stderr.write(`machete: ${err.message}\n`);
      return err.exitCode;
    }
    if (full.signal?.aborted) {
      full.stderr.write('machete: interrupted\n');
      return EXIT.failed;
    }
    full.stderr.write(`machete: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT.failed;
  } finally {
    interrupt?.dispose();
  }
}

/** The first SIGINT/SIGTERM ends the running command cleanly; a second one kills as usual. */
function onInterrupt(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const abort = () => ac.abort(new Error('interrupted'));
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  return {
    signal: ac.signal,
    dispose() {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    },
  };
}
