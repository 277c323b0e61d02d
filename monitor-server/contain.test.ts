import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { captureLogger } from '../lib/testing.js';
import { containListener, containUnary } from './contain.js';
import { ThrottledLog } from './refusals.js';

function context() {
  const { log, lines } = captureLogger('warn');
  const counts = { errors: 0 };
  const ctx = { log: new ThrottledLog(log, { intervalMs: 1_000, maxLinesPerInterval: 10, maxKeys: 10 }), now: () => 0, onError: () => { counts.errors++; } };
  return { ctx, lines, counts };
}

describe('containment', () => {
  it('a unary handler that throws answers INTERNAL once, is counted, and logged once per interval', () => {
    const { ctx, lines, counts } = context();
    const answers: unknown[] = [];
    const handler = containUnary<object, object>(ctx, 'Register', () => { throw new TypeError('boom'); });
    for (let i = 0; i < 5; i++) handler({} as grpc.ServerUnaryCall<object, object>, (err) => answers.push(err));
    expect(answers).toEqual(Array.from({ length: 5 }, () => ({ code: grpc.status.INTERNAL, details: 'internal error' })));
    expect(counts.errors).toBe(5);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ where: 'Register', err: { message: 'boom' }, msg: 'handler failed; contained' });
  });

  it('a handler that answered before throwing is not answered twice', () => {
    const { ctx } = context();
    const answers: unknown[] = [];
    containUnary<object, object>(ctx, 'Deregister', (_call, cb) => { cb(null, {}); throw new Error('late'); })({} as grpc.ServerUnaryCall<object, object>, (err, v) => answers.push(err ?? v));
    expect(answers).toEqual([{}]);
  });

  it('a listener that throws is reported and its cleanup runs; the caller never sees the error', () => {
    const { ctx, counts } = context();
    let cleaned = 0;
    const l = containListener(ctx, 'heartbeat', (n: number) => { if (n > 1) throw new Error('bad'); }, () => { cleaned++; });
    expect(() => { l(1); l(2); l(3); }).not.toThrow();
    expect([counts.errors, cleaned]).toEqual([2, 2]);
  });
});
