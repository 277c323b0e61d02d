/**
 * Last-resort containment for everything a client can trigger: a handler, listener or timer that
 * throws is logged (rate-limited), answered with a generic error where there is a caller, and the
 * server keeps serving. Errors in one call never reach the process's uncaught-exception path,
 * where they would drop every agent stream.
 */
import { status } from '@grpc/grpc-js';
import type { UnaryCallback, UnaryHandler } from '../lib/grpc-server.js';
import type { ThrottledLog } from './refusals.js';

export interface ContainContext {
  readonly log: ThrottledLog;
  readonly now: () => number;
  /** Called once per contained error (counts it). */
  readonly onError: () => void;
}

function report(ctx: ContainContext, where: string, err: unknown): void {
  ctx.onError();
  ctx.log.warn(`internal:${where}`, ctx.now(), { err, where }, 'handler failed; contained');
}

/** A unary handler that cannot throw past the server and answers exactly once. */
export function containUnary<Req, Res>(ctx: ContainContext, where: string, handler: UnaryHandler<Req, Res>): UnaryHandler<Req, Res> {
  return (call, callback) => {
    let answered = false;
    const once: UnaryCallback<Res> = (err, value) => {
      if (answered) return;
      answered = true;
      callback(err, value);
    };
    try {
      handler(call, once);
    } catch (err) {
      report(ctx, where, err);
      once({ code: status.INTERNAL, details: 'internal error' });
    }
  };
}

/** An event listener whose throw is reported and handed to `onThrow` (e.g. end that one stream). */
export function containListener<A extends unknown[]>(ctx: ContainContext, where: string, fn: (...args: A) => void, onThrow: (err: unknown) => void = () => {}): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      report(ctx, where, err);
      try {
        onThrow(err);
      } catch (again) {
        report(ctx, `${where}:cleanup`, again);
      }
    }
  };
}
