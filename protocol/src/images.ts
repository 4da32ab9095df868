/**
 * Image allowlist (`MACHETE_ALLOWED_IMAGES`): comma-separated patterns, checked by the API
 * (400 naming `image`) and again by every agent. Pure, no I/O.
 *
 * A pattern is `REPO` or `REPO:TAG`, where `*` matches any run of characters (`/` included,
 * so `registry.example.com/*` covers every repository under that registry).
 * - `REPO` alone matches the repository whatever the tag or digest.
 * - `REPO:TAG` matches the tag; a reference without a tag has the tag `latest`, and a
 *   reference pinned only by digest matches no `REPO:TAG` pattern.
 * References are compared as written: `busybox` is not rewritten to `docker.io/library/busybox`.
 */
export interface ImagePattern {
  repo: RegExp;
  tag: RegExp | null;
  source: string;
}

const PATTERN_RE = /^[A-Za-z0-9*._\/:@-]+$/;

function globToRegExp(glob: string): RegExp {
  const body = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${body}$`);
}

/** `name[:tag][@digest]` split the way Docker does: a `:` after the last `/` starts the tag. */
export function splitImageRef(ref: string): { repo: string; tag: string | null; digest: string | null } {
  const at = ref.indexOf('@');
  const digest = at === -1 ? null : ref.slice(at + 1);
  const nameTag = at === -1 ? ref : ref.slice(0, at);
  const colon = nameTag.lastIndexOf(':');
  const hasTag = colon > nameTag.lastIndexOf('/');
  return { repo: hasTag ? nameTag.slice(0, colon) : nameTag, tag: hasTag ? nameTag.slice(colon + 1) : null, digest };
}

/**
 * Parses the setting; empty or unset means any image (null). Throws on a malformed entry,
 * naming it (operator configuration, not client input).
 */
export function parseImagePatterns(s: string | undefined): ImagePattern[] | null {
  const entries = (s ?? '').split(',').map((e) => e.trim()).filter(Boolean);
  if (!entries.length) return null;
  return entries.map((source) => {
    if (!PATTERN_RE.test(source) || source.includes('@')) throw new Error(`MACHETE_ALLOWED_IMAGES: "${source.slice(0, 80)}" is not a pattern like registry.example.com/* or team/*:*`);
    const { repo, tag } = splitImageRef(source);
    if (!repo) throw new Error(`MACHETE_ALLOWED_IMAGES: "${source.slice(0, 80)}" has no repository`);
    return { repo: globToRegExp(repo), tag: tag === null ? null : globToRegExp(tag), source };
  });
}

/** True when `patterns` is null (no allowlist) or one pattern matches the reference. */
export function imageAllowed(ref: string, patterns: readonly ImagePattern[] | null): boolean {
  if (patterns === null) return true;
  const { repo, tag, digest } = splitImageRef(ref);
  const effectiveTag = tag ?? (digest ? null : 'latest');
  return patterns.some((p) => p.repo.test(repo) && (p.tag === null || (effectiveTag !== null && p.tag.test(effectiveTag))));
}
