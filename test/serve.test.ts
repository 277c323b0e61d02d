/**
 * serve(), the daemon loop of the process entries, in-process: a fake daemon, a fake exit and a
 * real pino logger over a memory stream. Signals are emitted on `process` (never sent), so only
 * the listeners are run; the listeners serve() adds are removed after each test.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { serve, type ServeOptions } from '../lib/serve.js';
import { captureLogger, waitFor } from '../lib/testing.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Signal = (typeof SIGNALS)[number];
type Listener = (...args: unknown[]) => void;

// Listeners the worker had before a test are set aside while it runs (emitting a signal must reach
// only serve()'s) and put back after it; the ones the test added are removed.
const setAside = new Map<Signal, Listener[]>();
let exitCodeBefore: typeof process.exitCode;
beforeEach(() => {
  exitCodeBefore = process.exitCode;
  process.exitCode = undefined;
  for (const sig of SIGNALS) {
    const before = process.listeners(sig) as Listener[];
    setAside.set(sig, before);
    for (const l of before) process.off(sig, l);
  }
});
afterEach(() => {
  for (const sig of SIGNALS) {
    const before = setAside.get(sig) ?? [];
    for (const l of process.listeners(sig) as Listener[]) if (!before.includes(l)) process.off(sig, l);
    for (const l of before) process.on(sig, l);
  }
  setAside.clear();
  process.exitCode = exitCodeBefore;
});

/** One call of the fake exit: its arguments and `process.exitCode` when it was called. */
interface ExitCall {
  readonly args: readonly [code?: number];
  readonly exitCode: typeof process.exitCode;
}

/**
 * A fake `exit` that records each call and returns. The real one never returns; a fake that threw
 * instead would surface as an unhandled rejection, because the signal handlers void shutdown()'s promise.
 */
function fakeExit(): { exit: ServeOptions['exit']; calls: ExitCall[] } {
  const calls: ExitCall[] = [];
  const exit = ((...args: [code?: number]) => {
    calls.push({ args, exitCode: process.exitCode });
  }) as ServeOptions['exit'];
  return { exit, calls };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve: () => void = () => {};
  let reject: (err: unknown) => void = () => {};
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** One turn of the event loop: every promise already settled has run its callbacks (no timer). */
const drain = (): Promise<void> => new Promise((r) => setImmediate(r));

const INFO = 30;
const WARN = 40;
const ERROR = 50;

describe('serve: SIGINT and SIGTERM', () => {
  it.each([
    { name: 'SIGTERM', signal: 'SIGTERM' as const },
    { name: 'SIGINT', signal: 'SIGINT' as const },
  ])('first $name closes the daemon once, logs it and exits with process.exitCode', async ({ signal }) => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    await serve(log, { close }, { exit });
    expect(calls).toEqual([]);

    process.emit(signal);
    const [call] = await waitFor('exit', () => calls.length > 0 && calls);
    expect(call).toStrictEqual({ args: [], exitCode: undefined });
    expect(calls).toHaveLength(1);
    expect(close).toHaveBeenCalledTimes(1);
    expect(lines).toContainEqual(expect.objectContaining({ level: INFO, signal, msg: 'shutting down' }));
    expect(lines.filter((l) => l.level !== INFO)).toEqual([]);
  });

  it('close() rejecting logs "shutdown failed" and exits with status 1', async () => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.reject(new Error('drain failed')));
    await serve(log, { close }, { exit });

    process.emit('SIGTERM');
    const [call] = await waitFor('exit', () => calls.length > 0 && calls);
    // No code: the process ends with process.exitCode, already 1 when exit is called.
    expect(call).toStrictEqual({ args: [], exitCode: 1 });
    expect(process.exitCode).toBe(1);
    expect(close).toHaveBeenCalledTimes(1);
    expect(lines).toContainEqual(expect.objectContaining({
      level: ERROR, msg: 'shutdown failed', err: expect.objectContaining({ type: 'Error', message: 'drain failed' }),
    }));
  });

  it.each([
    { name: 'SIGTERM twice', first: 'SIGTERM' as const, second: 'SIGTERM' as const },
    { name: 'SIGINT after SIGTERM', first: 'SIGTERM' as const, second: 'SIGINT' as const },
    { name: 'SIGTERM after SIGINT', first: 'SIGINT' as const, second: 'SIGTERM' as const },
  ])('a second signal while close() is pending exits at once with 1 ($name)', async ({ first, second }) => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const closing = deferred();
    const close = vi.fn(() => closing.promise);
    await serve(log, { close }, { exit });

    process.emit(first);
    expect(close).toHaveBeenCalledTimes(1);
    await drain();
    expect(calls).toEqual([]);

    process.emit(second);
    expect(calls[0]).toStrictEqual({ args: [1], exitCode: undefined });
    expect(lines).toContainEqual(expect.objectContaining({ level: WARN, signal: second, msg: 'second signal: exiting now' }));
    // The real exit never returns; this fake does, so let the pending close() end before the next test.
    closing.resolve();
    await drain();
  });
});

describe('serve: SIGHUP', () => {
  it('reloads the TLS files and keeps running', async () => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    const reloadTls = vi.fn(() => Promise.resolve());
    await serve(log, { close, reloadTls }, { exit });

    process.emit('SIGHUP');
    process.emit('SIGHUP');
    expect(reloadTls).toHaveBeenCalledTimes(2);
    await Promise.all(reloadTls.mock.results.map((r) => r.value));
    await drain();
    expect(calls).toEqual([]);
    expect(close).not.toHaveBeenCalled();
    expect(lines.filter((l) => l.level !== INFO)).toEqual([]);

    // Still running, not closing: a SIGTERM now is a first signal.
    process.emit('SIGTERM');
    await waitFor('exit', () => calls.length > 0);
    expect(calls).toStrictEqual([{ args: [], exitCode: undefined }]);
    expect(lines).toContainEqual(expect.objectContaining({ signal: 'SIGTERM', msg: 'shutting down' }));
  });

  it('a failed reload is logged and the process keeps running', async () => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    const reloadTls = vi.fn(() => Promise.reject(new Error('bad certificate')));
    await serve(log, { close, reloadTls }, { exit });

    process.emit('SIGHUP');
    const line = await waitFor('the reload failure line', () => lines.find((l) => l.msg === 'TLS reload failed; keeping the previous files'));
    expect(line).toMatchObject({ level: ERROR, err: { type: 'Error', message: 'bad certificate' } });
    expect(reloadTls).toHaveBeenCalledTimes(1);
    await drain();
    expect(calls).toEqual([]);
    expect(close).not.toHaveBeenCalled();

    process.emit('SIGTERM');
    await waitFor('exit', () => calls.length > 0);
    expect(calls).toStrictEqual([{ args: [], exitCode: undefined }]);
  });

  it('without reloadTls only logs "nothing to reload"', async () => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    await serve(log, { close }, { exit });

    process.emit('SIGHUP');
    expect(lines).toContainEqual(expect.objectContaining({ level: INFO, signal: 'SIGHUP', msg: 'nothing to reload' }));
    await drain();
    expect(calls).toEqual([]);
    expect(close).not.toHaveBeenCalled();
  });
});

describe('serve: done', () => {
  it('exits once done resolves', async () => {
    const { log } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    const done = deferred();
    let returned = false;
    const served = serve(log, { close, done: done.promise }, { exit }).then(() => { returned = true; });

    await drain();
    expect(returned).toBe(false);
    expect(calls).toEqual([]);

    done.resolve();
    await served;
    expect(calls).toStrictEqual([{ args: [], exitCode: undefined }]);
    expect(close).not.toHaveBeenCalled();
  });

  it('done settling while a signal\'s close() runs leaves the exit to the shutdown, with its status', async () => {
    const { log } = captureLogger();
    const { exit, calls } = fakeExit();
    const closing = deferred();
    const done = deferred();
    const close = vi.fn(() => closing.promise);
    const served = serve(log, { close, done: done.promise }, { exit });
    process.emit('SIGTERM');
    done.resolve(); // the daemon ends as part of closing
    await served;
    await drain();
    expect(calls).toEqual([]); // close() has not finished
    closing.reject(new Error('flush failed'));
    await waitFor('exit after close', () => calls.length === 1);
    expect(calls).toStrictEqual([{ args: [], exitCode: 1 }]);
  });

  it('a reload that throws at once is logged like one that rejects, and the process keeps running', async () => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const reloadTls = vi.fn((): Promise<void> => { throw new Error('bad key file'); });
    await serve(log, { close: vi.fn(() => Promise.resolve()), reloadTls }, { exit });
    process.emit('SIGHUP');
    await waitFor('reload failure logged', () => lines.some((l) => l.msg === 'TLS reload failed; keeping the previous files'));
    expect(lines.find((l) => l.msg === 'TLS reload failed; keeping the previous files')).toMatchObject({ err: expect.objectContaining({ message: 'bad key file' }) });
    expect(calls).toEqual([]);
  });

  it('rejects with the error done rejects with, without exiting', async () => {
    const { log } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    const done = deferred();
    const served = serve(log, { close, done: done.promise }, { exit });

    const err = new Error('identity lookup failed');
    done.reject(err);
    await expect(served).rejects.toBe(err);
    expect(calls).toEqual([]);
    expect(close).not.toHaveBeenCalled();
  });

  it('without done resolves at once, leaving the signal handlers installed', async () => {
    const { log, lines } = captureLogger();
    const { exit, calls } = fakeExit();
    const close = vi.fn(() => Promise.resolve());
    await expect(serve(log, { close }, { exit })).resolves.toBeUndefined();
    expect(calls).toEqual([]);
    expect(close).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    for (const sig of SIGNALS) expect(process.listenerCount(sig), sig).toBe(1);
  });
});
