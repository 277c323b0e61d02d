// A local ESLint plugin: `pure-room/imports`, an allow-list of what a pure room may import.
//
// A pure room (see eslint.config.mjs for the list) may import, as values:
//   - relative (or absolute) paths that resolve inside a pure room: `./y.js`, `../../sim/z.js`;
//   - a package on the allow-list, by name or subpath (`zod`, `zod/mini`).
// A declaration-level `import type` / `export type … from` / `import('…').T` in a type position
// may name any file inside the repository (a type-only import is erased at compile time and
// cannot do I/O), but not a package off the allow-list: a policy that needs an SDK's types is
// coupled to that SDK. Inline `import { type A } from …` counts as a value import: the
// declaration survives compilation under `verbatimModuleSyntax`, and it is one word to fix.
// Everything else (`node:*`, `fs`, `lib/clock`, `store/`, `providers/`, `#imports`) is an error
// naming the allow-list.

import path from 'node:path';

const WHY = 'pure rooms (controller/policy, monitor-server/liveness, sim) are passed `now` and their randomness; do no I/O';

/** `./a/b.js` → `a/b.ts`: NodeNext imports name the emitted file; the room list names sources. */
function sourceOf(rel) {
  return rel.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts').replace(/\.cjs$/, '.cts');
}

/** Tests and test helpers (`*.test.ts`, `testing.ts`): not pure, not built, never imported by pure code. */
const TEST_FILE = /(\.test|(^|\/)testing)\.[cm]?[jt]s$/;

/** True when `rel` (repo-relative, `/`-separated) lies in one of `rooms` and is not a test. */
function inRooms(rel, rooms) {
  if (TEST_FILE.test(rel)) return false;
  const src = sourceOf(rel);
  return rooms.some((room) =>
    room.endsWith('/')
      // A folder room: anything below it, or the folder itself (an index import).
      ? src.startsWith(room) || src === room.slice(0, -1)
      // A file room: that file, with or without its extension.
      : src === room || src === room.replace(/\.[cm]?ts$/, ''));
}

/** `zod/mini` → `zod`, `@scope/pkg/sub` → `@scope/pkg`. */
function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const imports = {
  meta: {
    type: 'problem',
    docs: { description: 'pure rooms import only from pure rooms and allow-listed packages' },
    schema: [{
      type: 'object',
      properties: {
        root: { type: 'string' },
        rooms: { type: 'array', items: { type: 'string' } },
        packages: { type: 'array', items: { type: 'string' } },
      },
      required: ['root', 'rooms', 'packages'],
      additionalProperties: false,
    }],
    messages: {
      notAllowed: "'{{spec}}' {{what}}. Allowed: relative imports inside {{rooms}}; packages {{packages}}; "
        + '`import type` from any file in the repo. {{why}}. To allow a pure package, add it to PURE_PACKAGES in eslint.config.mjs.',
    },
  },
  create(context) {
    const { root, rooms, packages } = context.options[0];
    const filename = context.filename ?? context.getFilename();
    const dir = path.dirname(filename);

    /** Why `spec` may not be imported, or null when it may. */
    function refusal(spec, typeOnly) {
      if (spec.startsWith('.') || path.isAbsolute(spec)) {
        const rel = path.relative(root, path.resolve(dir, spec)).split(path.sep).join('/');
        const inRepo = rel !== '' && !rel.startsWith('../') && rel !== '..' && !path.isAbsolute(rel);
        if (!inRepo) return 'resolves outside the repository';
        if (typeOnly) return null;
        if (TEST_FILE.test(rel)) return `resolves to ${rel}, a test file`;
        if (inRooms(rel, rooms)) return null;
        return `resolves to ${rel}, outside the pure rooms (write \`import type\` if only types are needed)`;
      }
      if (spec.startsWith('node:')) return 'is a Node built-in';
      if (spec.startsWith('#')) return 'is a package.json subpath import';
      if (packages.includes(packageName(spec))) return null;
      return 'is not an allow-listed package';
    }

    function check(node, source, typeOnly) {
      if (!source || typeof source.value !== 'string') return;
      const what = refusal(source.value, typeOnly);
      if (what === null) return;
      context.report({
        node,
        messageId: 'notAllowed',
        data: {
          spec: source.value, what, rooms: rooms.join(', '), packages: packages.join(', '), why: WHY,
        },
      });
    }

    return {
      ImportDeclaration(node) { check(node, node.source, node.importKind === 'type'); },
      ExportNamedDeclaration(node) { if (node.source) check(node, node.source, node.exportKind === 'type'); },
      ExportAllDeclaration(node) { check(node, node.source, node.exportKind === 'type'); },
      // `import fs = require('fs')`
      TSImportEqualsDeclaration(node) {
        if (node.moduleReference.type === 'TSExternalModuleReference') {
          check(node, node.moduleReference.expression, node.importKind === 'type');
        }
      },
      // `type C = import('../../lib/clock.js').Clock`: a type position, so type-only.
      TSImportType(node) {
        // typescript-eslint ≥ 8.40 names the string `source`; older ones only have `argument`.
        if ('source' in node) return check(node, node.source, true);
        const arg = node.argument;
        check(node, arg && arg.type === 'TSLiteralType' ? arg.literal : arg, true);
      },
    };
  },
};

export default { meta: { name: 'pure-room' }, rules: { imports } };
export { WHY };
