/** The docs name every configuration key: a key added to a schema without docs fails here. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AGENT_CONFIG_KEYS } from '../config/agent.js';
import { CONTROLLER_CONFIG_KEYS } from '../config/controller.js';
import { MONITOR_SERVER_CONFIG_KEYS } from '../config/monitor-server.js';
import { ROUTES } from '../api/routes.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('configuration docs', () => {
  it.each([
    { name: 'agent', keys: AGENT_CONFIG_KEYS, example: 'agent.env.example' },
    { name: 'monitor-server', keys: MONITOR_SERVER_CONFIG_KEYS, example: 'monitor-server.env.example' },
    { name: 'controller', keys: CONTROLLER_CONFIG_KEYS, example: 'controller.env.example' },
  ])('$name: every key is in config/$example and the README table', ({ keys, example }) => {
    const text = readFileSync(new URL(`../config/${example}`, import.meta.url), 'utf8');
    const inExample = new Set([...text.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
    expect(keys.filter((k) => !inExample.has(k))).toEqual([]);
    expect([...inExample].filter((k) => !keys.includes(k as string))).toEqual([]);
    expect(keys.filter((k) => !readme.includes(`\`${k}\``))).toEqual([]);
  });

  it('the README lists every HTTP API route', () => {
    expect(ROUTES.map((r) => `${r.method} ${r.path}`).filter((r) => !readme.includes(`\`${r}\``))).toEqual([]);
  });

  it('the quick start has both contract commands', () => {
    expect(readme).toContain('npm ci && npm run demo');
    expect(readme).toContain('npm ci && npm test');
  });
});
