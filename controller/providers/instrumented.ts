import { performance } from 'node:perf_hooks';
import type { ControllerMetrics } from '../metrics.js';
import { asProviderError, type InstanceProvider, type LaunchRequest, type LaunchResult, type ProviderListing, type TerminateRequest, type TerminateResult } from './types.js';

/** A provider whose every call is counted and timed in the controller's metrics. */
export class InstrumentedProvider implements InstanceProvider {
  readonly name: string;
  readonly lifecycle: InstanceProvider['lifecycle'];
  readonly instancesEndWithController: boolean;

  constructor(readonly inner: InstanceProvider, private readonly metrics: ControllerMetrics) {
    this.name = inner.name;
    this.lifecycle = inner.lifecycle;
    this.instancesEndWithController = inner.instancesEndWithController;
  }

  private async timed<T>(operation: string, groupId: string, f: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      const r = await f();
      this.metrics.call(operation, (performance.now() - start) / 1000, undefined);
      return r;
    } catch (err) {
      this.metrics.call(operation, (performance.now() - start) / 1000, asProviderError(err, groupId));
      throw err;
    }
  }

  verify(groupId: string, bounds: { readonly minSize: number; readonly maxSize: number }): Promise<void> {
    return this.timed('verify', groupId, () => this.inner.verify(groupId, bounds));
  }

  launch(req: LaunchRequest): Promise<LaunchResult> {
    return this.timed('launch', req.groupId, () => this.inner.launch(req));
  }

  async terminate(req: TerminateRequest): Promise<TerminateResult> {
    const r = await this.timed('terminate', req.groupId, () => this.inner.terminate(req));
    // Refusals inside an accepted call count as errors too.
    for (const f of r.failed) this.metrics.call('terminate-instance', 0, f.error);
    return r;
  }

  setDesiredCapacity(req: { readonly groupId: string; readonly desired: number }): Promise<void> {
    return this.timed('set-desired', req.groupId, () => this.inner.setDesiredCapacity(req));
  }

  list(groupId: string): Promise<ProviderListing> {
    return this.timed('list', groupId, () => this.inner.list(groupId));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
