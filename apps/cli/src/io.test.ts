import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configPath, DEFAULT_SERVER, loadCliConfig, normalizeServer } from './config.ts';
import { formatTable, parseLabels } from './io.ts';

describe('formatTable', () => {
  it('aligns columns on the widest cell, shows empty cells as "-", strips control characters', () => {
    expect(formatTable(['NAME', 'N', 'NOTE'], [['a', 1, null], ['long-name', 22, 'x\u001b[2Jy']])).toBe(
      ['NAME        N    NOTE', 'a           1    -', 'long-name   22   x [2Jy'].join('\n'),
    );
  });
});

describe('parseLabels', () => {
  it('reads k=v pairs and, where allowed, k- removals', () => {
    expect(parseLabels(['a=1', 'b=x=y', 'c='])).toEqual({ set: { a: '1', b: 'x=y', c: '' }, remove: [] });
    expect(parseLabels(['a=1', 'z-'], true)).toEqual({ set: { a: '1' }, remove: ['z'] });
    expect(() => parseLabels(['z-'])).toThrow(/key=value/);
    expect(() => parseLabels(['=v'])).toThrow(/key=value/);
  });
});

describe('CLI config', () => {
  it('puts the file under XDG_CONFIG_HOME when absolute, else ~/.config', () => {
    expect(configPath({ HOME: '/home/u' })).toBe(path.join('/home/u', '.config', 'machete', 'config.json'));
    expect(configPath({ HOME: '/home/u', XDG_CONFIG_HOME: '/x' })).toBe('/x/machete/config.json');
    expect(configPath({ HOME: '/home/u', XDG_CONFIG_HOME: 'relative' })).toBe(path.join('/home/u', '.config', 'machete', 'config.json'));
    expect(() => configPath({})).toThrow(/HOME/);
  });

  it('defaults the server, and the environment alone suffices without HOME', () => {
    expect(loadCliConfig({ HOME: '/nonexistent' })).toMatchObject({ server: DEFAULT_SERVER, token: null });
    expect(loadCliConfig({ MACHETE_SERVER: 'https://m.example:8443/', MACHETE_TOKEN: 't' })).toEqual({ server: 'https://m.example:8443', token: 't', file: null });
    expect(() => loadCliConfig({ MACHETE_TOKEN: 't' })).toThrow(/HOME/);
  });

  it('accepts only plain http(s) server URLs', () => {
    expect(normalizeServer('http://10.0.0.1:8090/prefix/')).toBe('http://10.0.0.1:8090/prefix');
    expect(() => normalizeServer('ftp://x')).toThrow(/http/);
    expect(() => normalizeServer('http://u:p@x')).toThrow(/credentials/);
    expect(() => normalizeServer('not a url')).toThrow(/URL/);
  });
});
