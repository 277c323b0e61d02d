/** Test doubles for the controller (not part of the build). */
import type { InstanceProvider, ProviderInstance } from './providers/types.js';
import { ProviderError } from './providers/types.js';

/** An in-memory provider: instances exist when launched, and tests can fail or lose them. */
export class FakeProvider implements InstanceProvider {
  readonly name = 'fake';
  readonly instancesEndWithController = false;
  readonly instances = new Map<string, { groupId: string; state: 'running' | 'gone'; detail: string }>();
  readonly calls: string[] = [];
  /** Next launches / terminations fail with this message while set. */
  failLaunch: string | undefined;
  failTerminate: string | undefined;
  private seq = 0;

  async launch(req: { groupId: string; instanceId: string }): Promise<{ providerId: string }> {
    this.calls.push(`launch ${req.instanceId}`);
    if (this.failLaunch !== undefined) throw new ProviderError(this.failLaunch, req.groupId);
    this.instances.set(req.instanceId, { groupId: req.groupId, state: 'running', detail: 'running' });
    return { providerId: `fake-${++this.seq}` };
  }

  async terminate(req: { groupId: string; instanceId: string }): Promise<void> {
    this.calls.push(`terminate ${req.instanceId}`);
    if (this.failTerminate !== undefined) throw new ProviderError(this.failTerminate, req.groupId);
    this.instances.delete(req.instanceId);
  }

  async list(groupId: string): Promise<readonly ProviderInstance[]> {
    return [...this.instances].filter(([, i]) => i.groupId === groupId).map(([instanceId, i]) => ({ instanceId, providerId: instanceId, state: i.state, detail: i.detail }));
  }

  /** The instance vanished outside the controller (crashed, terminated by hand). */
  lose(instanceId: string, detail = 'terminated outside the controller'): void {
    const i = this.instances.get(instanceId);
    if (i !== undefined) this.instances.set(instanceId, { ...i, state: 'gone', detail });
  }

  async close(): Promise<void> {}
}
