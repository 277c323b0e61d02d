/**
 * The act side of the controller (Nomad's target plugins): where instances come from. The
 * controller decides how many; a provider launches and terminates exactly what it is told.
 */

/** What the provider knows about one of its instances. */
export interface ProviderInstance {
  readonly instanceId: string;
  readonly providerId: string;
  /** `gone`: the provider no longer runs it (exited, terminated outside the controller). */
  readonly state: 'running' | 'gone';
  /** e.g. "exited with signal SIGKILL". */
  readonly detail: string;
}

export interface InstanceProvider {
  readonly name: string;
  /** True when close() stops every instance (the local provider's children cannot outlive it). */
  readonly instancesEndWithController: boolean;
  /** Start an instance with the id the controller chose; resolves once the provider accepted it. */
  launch(req: { readonly groupId: string; readonly instanceId: string }): Promise<{ readonly providerId: string }>;
  /** Stop an instance; resolves when it is gone. Terminating an unknown instance is not an error. */
  terminate(req: { readonly groupId: string; readonly instanceId: string; readonly providerId: string | null }): Promise<void>;
  /** The group's instances as the provider sees them. */
  list(groupId: string): Promise<readonly ProviderInstance[]>;
  /** Release resources (the local provider stops its children: they cannot outlive it). */
  close(): Promise<void>;
}

/** A provider call failed; the controller records it and retries on a later evaluation. */
export class ProviderError extends Error {
  override name = 'ProviderError';
  constructor(message: string, readonly groupId: string, opts?: ErrorOptions) {
    super(message, opts);
  }
}
