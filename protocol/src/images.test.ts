import { describe, expect, it } from 'vitest';
import { imageAllowed, parseImagePatterns, splitImageRef } from './images.ts';

describe('image allowlist patterns', () => {
  it('allows anything when unset or empty', () => {
    expect(parseImagePatterns(undefined)).toBeNull();
    expect(parseImagePatterns(' , ')).toBeNull();
    expect(imageAllowed('anything/at:all', null)).toBe(true);
  });

  it('splits references the way Docker does (a registry port is not a tag)', () => {
    expect(splitImageRef('localhost:5000/app:1.2')).toEqual({ repo: 'localhost:5000/app', tag: '1.2', digest: null });
    expect(splitImageRef('localhost:5000/app')).toEqual({ repo: 'localhost:5000/app', tag: null, digest: null });
    expect(splitImageRef(`app@sha256:${'a'.repeat(64)}`)).toEqual({ repo: 'app', tag: null, digest: `sha256:${'a'.repeat(64)}` });
  });

  const patterns = parseImagePatterns('registry.example.com/*, machete/*:*, pinned/app:1.*, localhost:5000/*');
  it.each([
    ['registry.example.com/app', true],
    ['registry.example.com/team/app:2', true],
    [`registry.example.com/app@sha256:${'b'.repeat(64)}`, true],
    ['registry.example.com.evil.io/app', false],
    ['evil.io/registry.example.com/app', false],
    ['machete/busybox:test', true],
    ['machete/busybox', true], // no tag: latest, and `*` matches it
    ['machete.evil.com/x', false],
    ['other/machete/x', false],
    ['pinned/app:1.4', true],
    ['pinned/app:2.0', false],
    ['pinned/app', false], // latest
    [`pinned/app@sha256:${'c'.repeat(64)}`, false], // a digest is not a 1.* tag
    ['localhost:5000/app:1', true],
    ['busybox', false],
  ])('%s → %s', (ref, want) => {
    expect(imageAllowed(ref, patterns)).toBe(want);
  });

  it('throws on a malformed pattern, naming it', () => {
    expect(() => parseImagePatterns('ok/*, bad pattern')).toThrow('"bad pattern"');
    expect(() => parseImagePatterns('x@sha256:abc')).toThrow('MACHETE_ALLOWED_IMAGES');
    expect(() => parseImagePatterns(':tag')).toThrow('no repository');
  });
});
