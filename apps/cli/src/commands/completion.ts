import type { Command } from 'commander';
import type { Ctx } from '../context.ts';
import { usageError } from '../io.ts';

/** Started by the same bin but not through commander (bin/main.ts): offered at the top level too. */
const OUTSIDE_COMMANDER = ['serve', 'agent'];

/** Every command path (`""`, `"tool"`, `"tool apply"`) → the words that may follow it. */
export function completionWords(program: Command): Map<string, string[]> {
  const words = new Map<string, string[]>();
  const walk = (cmd: Command, path: string) => {
    const subs = cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    const opts = cmd.options.flatMap((o) => [o.short, o.long].filter((f): f is string => !!f));
    words.set(path, [...subs, ...(path === '' ? OUTSIDE_COMMANDER : []), ...opts, '--help']);
    for (const c of cmd.commands) for (const name of [c.name(), ...c.aliases()]) walk(c, path ? `${path} ${name}` : name);
  };
  walk(program, '');
  return words;
}

/**
 * A bash completion script generated from the command tree itself, so it never lags behind a
 * new command or option. Words are fixed strings (command and option names), quoted for bash.
 */
export function bashCompletion(program: Command): string {
  const cases = [...completionWords(program)].map(([path, w]) => `    ${JSON.stringify(path)}) echo ${JSON.stringify(w.join(' '))} ;;`).join('\n');
  return `# bash completion for machete; load with: source <(machete completion bash)
_machete_words() {
  case "$1" in
${cases}
  esac
}
_machete() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    case " $(_machete_words "$path") " in *" $w "*) path="\${path:+$path }$w" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_machete_words "$path")" -- "$cur"))
}
complete -o default -F _machete machete
`;
}

export function registerCompletion(program: Command, ctx: Ctx): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(machete completion bash)')
    .argument('<shell>', 'bash (zsh: autoload bashcompinit && bashcompinit first)')
    .action((shell: string) => {
      if (shell !== 'bash') throw usageError(`no completion for ${shell.slice(0, 20)}: only bash (zsh via bashcompinit)`);
      ctx.io.stdout.write(bashCompletion(program));
    });
}
