import path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import pureRoom, { WHY } from './lint/pure-room.mjs';

// Pure rooms: the decision core. They are passed `now` and their randomness and do no I/O, so the
// same input always gives the same decision (docs/architecture.md, STYLE.md §1). A folder room ends
// in `/` and covers every file below it; a file room names one file (monitor-server/liveness.ts
// today; monitor-server/liveness/ is ready for when it becomes a folder). Tests and test helpers
// (`*.test.ts`, `testing.ts`: tsconfig.build.json leaves both out of the build) are not pure.
const PURE_ROOMS = ['controller/policy/', 'domain/', 'monitor-server/liveness/', 'monitor-server/liveness.ts', 'sim/'];

// Third-party packages a pure room may import as values. To add one, check that it does no I/O,
// reads no clock (`Date.now()`, `new Date()` without an argument), no environment and no
// randomness at import or in what the room calls, then add its package name here: the name
// covers its subpaths (`zod` allows `zod/mini`). croner and cron-parser: the scheduled-actions
// policy's cron library (either one); both are given `now` / a start date by the caller.
const PURE_PACKAGES = ['zod', 'croner', 'cron-parser'];

const because = (what) => `${what}: ${WHY}`;

// Every global that reads the clock, the environment or randomness, does I/O, defers work, or
// hands out another way to reach those (globalThis and its aliases, eval, Function, require).
const pureRoomGlobals = [
  ['Date', '`Date` reads or formats the clock; take `now` (epoch ms) as an argument'],
  ['performance', '`performance` reads the clock'],
  ['process', '`process` is the environment, the clock and exit'],
  ['crypto', '`crypto` is a source of randomness'],
  ['setTimeout', 'timers defer work to the clock'],
  ['setInterval', 'timers defer work to the clock'],
  ['setImmediate', 'timers defer work to the clock'],
  ['clearTimeout', 'timers defer work to the clock'],
  ['clearInterval', 'timers defer work to the clock'],
  ['clearImmediate', 'timers defer work to the clock'],
  ['queueMicrotask', 'timers defer work to the clock'],
  ['fetch', '`fetch` is network I/O'],
  ['WebSocket', '`WebSocket` is network I/O'],
  ['XMLHttpRequest', '`XMLHttpRequest` is network I/O'],
  ['console', '`console` is I/O; return a reason trail instead'],
  ['require', '`require` loads modules around the import allow-list'],
  ['globalThis', '`globalThis` reaches every forbidden global'],
  ['global', '`global` reaches every forbidden global'],
  ['window', '`window` reaches every forbidden global'],
  ['self', '`self` reaches every forbidden global'],
  ['eval', '`eval` reaches every forbidden global'],
  ['Function', '`Function` compiles code that reaches every forbidden global'],
].map(([name, what]) => ({ name, message: because(what) }));

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
    files: PURE_ROOMS.map((room) => (room.endsWith('/') ? `${room}**/*.ts` : room)),
    ignores: ['**/*.test.ts', '**/testing.ts'],
    plugins: { 'pure-room': pureRoom },
    rules: {
      'pure-room/imports': ['error', { root: path.dirname(fileURLToPath(import.meta.url)), rooms: PURE_ROOMS, packages: PURE_PACKAGES }],
      'no-restricted-globals': ['error', ...pureRoomGlobals],
      // `Math` itself is pure; only its random source is not (also catches `Math['random']` and
      // `const { random } = Math`).
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: because('`Math.random` is randomness; take a random source as an argument') }],
      'no-restricted-syntax': ['error',
        { selector: 'ImportExpression', message: because('dynamic `import()` loads modules around the import allow-list') },
        // `new.target`/`import.meta` are harmless; `import.meta.url`/`dirname` lead to the file system.
        { selector: "MetaProperty[meta.name='import'][property.name='meta']", message: because('`import.meta` leads to the file system') }],
    },
  },
);
