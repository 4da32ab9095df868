// Lint: typescript-eslint's recommended rules (syntactic only, so `npm run lint` stays fast),
// plus the two boundaries DESIGN.md states as rules: configuration is read from the environment
// in config.ts files only, and the control plane and the agent never spawn processes.
// Which folder may import which is checked by dependency-cruiser (.dependency-cruiser.cjs).
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

const CODE = '*.{ts,mts,cts,js,mjs,cjs}';
const SOURCES = [`{protocol,db,apps,agent,test,bench,bin}/**/${CODE}`];
const TESTS = ['**/*.test.ts', `{test,bench}/**/${CODE}`];
/** Where reading the environment is fine: config loaders, and the harnesses that start real daemons. */
const ENV_ALLOWED = ['**/config.ts', 'test/**', 'bench/**'];
/** The control plane and the agent reach Docker through dockerode, never through a shell. */
const NO_SPAWN = [`{agent,apps}/**/${CODE}`];

const ENV_MESSAGE = 'Read the environment once, in a config.ts (`loadConfig(env)`), and pass the frozen config down.';
const SPAWN_MESSAGE = 'No child processes in agent/ or apps/: reach Docker through the docker port (dockerode).';
const CHILD_PROCESS = '/^(node:)?child_process$/';

/** Rule options for the restrictions that apply to a group of files (later config objects replace, not merge, options). */
function restrict({ env, spawn }) {
  const syntax = [];
  const rules = {};
  if (env) {
    rules['no-restricted-properties'] = ['error', { object: 'process', property: 'env', message: ENV_MESSAGE }];
    syntax.push({ selector: "ImportDeclaration[source.value=/^(node:)?process$/] ImportSpecifier[imported.name='env']", message: ENV_MESSAGE });
  }
  if (spawn) {
    rules['no-restricted-imports'] = [
      'error',
      { paths: [{ name: 'child_process', message: SPAWN_MESSAGE }, { name: 'node:child_process', message: SPAWN_MESSAGE }] },
    ];
    syntax.push(
      { selector: `ImportExpression[source.value=${CHILD_PROCESS}]`, message: SPAWN_MESSAGE },
      { selector: `CallExpression[callee.name='require'][arguments.0.value=${CHILD_PROCESS}]`, message: SPAWN_MESSAGE },
    );
  }
  rules['no-restricted-syntax'] = syntax.length ? ['error', ...syntax] : 'off';
  return rules;
}

export default defineConfig(
  globalIgnores(['**/node_modules/', 'db/migrations/', 'test-results/', '.machete/', '.tmp/']),
  {
    files: SOURCES,
    extends: [tseslint.configs.recommended],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  { files: TESTS, rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // Most specific last: each object below replaces the restriction options of the ones above.
  { files: SOURCES, ignores: ENV_ALLOWED, rules: restrict({ env: true, spawn: false }) },
  { files: NO_SPAWN, ignores: ENV_ALLOWED, rules: restrict({ env: true, spawn: true }) },
  { files: ['{agent,apps}/**/config.ts'], rules: restrict({ env: false, spawn: true }) },
);
