import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The pure decision core never does I/O and never reads the clock: see docs/architecture.md.
const pureRoomImports = {
  paths: [
    'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'child_process', 'node:child_process',
    'net', 'node:net', 'http', 'node:http', 'os', 'node:os', 'better-sqlite3', 'pino',
    '@grpc/grpc-js', '@grpc/proto-loader', 'systeminformation', 'dotenv', 'dotenv/config',
  ].map((name) => ({ name, message: 'pure rooms (controller/policy, monitor-server/liveness, sim) do no I/O' })),
  patterns: [{ group: ['@aws-sdk/*', '**/store/*', '**/providers/*'], message: 'pure rooms do no I/O' }],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'proto/gen/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', {
        selector: "MemberExpression[object.name='process'][property.name='exit']",
        message: 'only main.ts files exit the process',
      }],
    },
  },
  {
    files: ['**/main.ts', 'cli/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts', '**/*.test.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['controller/policy/**/*.ts', 'monitor-server/liveness.ts', 'sim/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', pureRoomImports],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'pure rooms are passed `now`' },
        { object: 'Math', property: 'random', message: 'pure rooms are passed their randomness' },
        { object: 'process', property: 'env', message: 'pure rooms read no environment' }],
    },
  },
);
