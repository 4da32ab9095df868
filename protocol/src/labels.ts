/** Container labels every MACHETE-created container carries (API.md "Containers"). */
export const LABEL_PREFIX = 'machete.';
export const Labels = {
  managed: 'machete.managed',
  tool: 'machete.tool',
  instance: 'machete.instance',
  host: 'machete.host',
  revision: 'machete.revision',
  kind: 'machete.kind',
  /** Tool version the container was built from. */
  version: 'machete.version',
  /** Hash of the spec the container was built from; a change means replace. */
  specHash: 'machete.spec-hash',
  /** Hash of the names and versions (never the values) of the mounted secrets; a change means replace. */
  secrets: 'machete.secrets',
} as const;

export const INSTANCE_KINDS = ['replica', 'invocation', 'warm'] as const;
export type InstanceKind = (typeof INSTANCE_KINDS)[number];
