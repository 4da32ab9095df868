// The import arrows of DESIGN.md ("Layout and what may import what"), checked by
// `npm run lint`. Arrows only point downward: protocol ← db ← apps/api; agent and
// protocol never reach up. Test files may import anything (test/ helpers included),
// except where a rule says otherwise.
const TESTS = '\\.test\\.ts$';
/** Folders nothing shipped may import: they sit above every package. */
const ABOVE = '^(test|bench|bin)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'protocol-only-zod',
      comment:
        'protocol/ is the bottom layer: zod only (DESIGN.md), no node builtins (the dashboard runs it in a browser), nothing of this repository outside protocol/.',
      severity: 'error',
      from: { path: '^protocol/', pathNot: TESTS },
      to: { pathNot: ['^protocol/', '^node_modules/zod/'] },
    },
    {
      name: 'db-only-its-drivers',
      comment: 'db/ holds the schema and the driver choice: drizzle-orm, postgres and pglite (plus node builtins).',
      severity: 'error',
      from: { path: '^db/', pathNot: TESTS },
      to: { path: '^node_modules/', pathNot: '^node_modules/(drizzle-orm|postgres|@electric-sql/pglite)/' },
    },
    {
      name: 'db-not-upward',
      comment: 'db/ sits below the control plane and beside the agent: it never imports them.',
      severity: 'error',
      from: { path: '^db/', pathNot: TESTS },
      to: { path: ['^apps/', '^agent/', ABOVE] },
    },
    {
      name: 'db-protocol-types-only',
      comment: 'db/ may name protocol types (the jsonb column type of a tool spec), never load protocol code.',
      severity: 'error',
      from: { path: '^db/', pathNot: TESTS },
      to: { path: '^protocol/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'agent-not-db-or-apps',
      comment: 'The agent talks to the control plane over the wire protocol only; it never imports db/ or apps/ (tests included).',
      severity: 'error',
      from: { path: '^agent/' },
      to: { path: ['^db/', '^apps/'] },
    },
    {
      name: 'agent-not-upward',
      severity: 'error',
      from: { path: '^agent/', pathNot: TESTS },
      to: { path: ABOVE },
    },
    {
      name: 'api-not-agent-or-clients',
      comment: 'The control plane never imports the agent, the dashboard or the CLI (tests included).',
      severity: 'error',
      from: { path: '^apps/api/' },
      to: { path: ['^agent/', '^apps/web/', '^apps/cli/'] },
    },
    {
      name: 'api-not-upward',
      severity: 'error',
      from: { path: '^apps/api/', pathNot: TESTS },
      to: { path: ABOVE },
    },
    {
      name: 'clients-api-types-only',
      comment: 'The CLI and the dashboard see the API through HTTP; they may only `import type` its app type.',
      severity: 'error',
      from: { path: '^apps/(cli|web)/', pathNot: TESTS },
      to: { path: '^apps/api/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'clients-not-db-or-agent',
      severity: 'error',
      from: { path: '^apps/(cli|web)/', pathNot: TESTS },
      to: { path: ['^db/', '^agent/', ABOVE] },
    },
    {
      name: 'services-not-hono',
      comment: 'Services and the scheduler are domain logic: no hono, no HTTP layer; routes call them, not the reverse.',
      severity: 'error',
      from: { path: '^apps/api/src/(services|scheduler)/', pathNot: TESTS },
      to: { path: ['^node_modules/(hono|@hono/[^/]+)/', '^apps/api/src/http/'] },
    },
    {
      name: 'no-unresolvable',
      comment: 'An import that cannot be resolved would slip past every rule above.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-circular',
      severity: 'warn',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['^db/migrations/', '^\\.tmp/', '^test-results/'] },
    // `import type` is part of the contract (clients may import the API's app type only that way).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'types', 'default'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.mts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
