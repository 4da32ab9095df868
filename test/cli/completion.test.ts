import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { machete } from '../helpers/cli.ts';

// The generated script run by a real bash: what a user gets after `source <(machete completion bash)`.
async function complete(script: string, words: string[]): Promise<string[]> {
  const program = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _machete; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe('machete completion bash', () => {
  it('prints a script that completes commands, subcommands and the options of the command typed so far', async () => {
    const r = await machete(['completion', 'bash'], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('complete -o default -F _machete machete');
    expect(await complete(r.stdout, ['machete', 'to'])).toEqual(['tool', 'token']);
    expect(await complete(r.stdout, ['machete', ''])).toEqual(expect.arrayContaining(['login', 'scale', 'invoke', 'logs', 'hosts', 'join-token', 'secret', 'events', 'audit', 'agent', 'serve']));
    expect(await complete(r.stdout, ['machete', 'hosts', 'dr'])).toEqual(['drain']);
    expect(await complete(r.stdout, ['machete', 'tool', 'apply', '--'])).toEqual(['--file', '--name', '--json', '--help']);
    // A positional argument (the tool name) does not lose the command's options.
    expect(await complete(r.stdout, ['machete', 'scale', 'hello', '--n'])).toEqual(['--no-wait']);
  });

  it('refuses another shell as a usage error (exit 2, one line)', async () => {
    const r = await machete(['completion', 'fish'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('machete: no completion for fish: only bash (zsh via bashcompinit)\n');
  });
});
