/**
 * The act side of the controller (Nomad's target plugins): where instances come from.
 *
 * Contract v2, written for clouds (EC2, Auto Scaling) with `local` as the special case:
 * - **Identity.** An instance's id in the store is the provider's own id (an EC2 instance id,
 *   `i-…`), learnt from the launch result. The agent registers with that same id (on EC2 it reads
 *   it from IMDSv2), so the launched row and the agent's row are one row. Every launch also
 *   carries a launch token, written to the store before the call and set as a tag, so that a
 *   launch interrupted by a crash is found again.
 * - **Accepted, not done.** `launch` and `terminate` resolve when the cloud accepted the request;
 *   the controller follows progress through `list`. Both are idempotent: `launch` by its token
 *   (EC2's ClientToken), `terminate` by the instance id.
 * - **Eventually consistent.** `list` is the provider's whole view of the group, including
 *   instances the controller did not launch, and it may lag a launch by seconds or minutes.
 * - **Typed failures.** Every failure is a ProviderError with a code and `retryable`.
 */

/** What the provider says about one instance of a group, already mapped to our vocabulary. */
export interface ProviderInstance {
  /** The provider's id, also the instance's id in the store and the id its agent registers with. */
  readonly id: string;
  readonly groupId: string;
  /**
   * `pending`: accepted or booting; `running`: the provider runs it (its agent may not have
   * registered yet); `terminating`: on its way out; `gone`: stopped, terminated or exited.
   */
  readonly state: 'pending' | 'running' | 'terminating' | 'gone';
  /** The provider's own words, e.g. "running", "shutting-down", "exited with signal SIGKILL". */
  readonly detail: string;
  /** The launch token tag, when the controller launched it. */
  readonly launchToken?: string | undefined;
  /** When the provider launched it, epoch ms. */
  readonly launchedAt?: number | undefined;
  /** Availability zone (or "local"). */
  readonly zone?: string | undefined;
  readonly instanceType?: string | undefined;
  /** Private address, for operators. */
  readonly address?: string | undefined;
}

/** The provider's view of one group. */
export interface ProviderListing {
  readonly instances: readonly ProviderInstance[];
  /**
   * Only for providers whose cloud owns the lifecycle (`lifecycle: 'cloud'`, e.g. an Auto
   * Scaling group): the cloud's own bounds and desired count.
   */
  readonly capacity?: { readonly desired: number; readonly min: number; readonly max: number } | undefined;
  /**
   * Set when the cloud forbids acting now (an instance refresh in progress, a suspended process):
   * the controller holds and records this sentence.
   */
  readonly blocked?: string | undefined;
}

export interface LaunchRequest {
  readonly groupId: string;
  /**
   * Idempotency token (1–64 ASCII characters), stored before the call: the same token never
   * launches twice, so a retry after a crash or a timeout is safe.
   */
  readonly token: string;
  /** How many instances, at least 1. */
  readonly count: number;
}

export interface LaunchResult {
  /** What the cloud accepted; may be fewer than asked when capacity ran short. */
  readonly instances: readonly ProviderInstance[];
  /** Why fewer than `count` were accepted, when they were. */
  readonly shortfall?: ProviderError | undefined;
}

export interface TerminateRequest {
  readonly groupId: string;
  readonly ids: readonly string[];
  /**
   * Cloud-owned lifecycle only: lower the cloud's desired count with each termination (a
   * scale-in), or leave it so that the cloud launches a replacement (an unhealthy instance).
   */
  readonly decrement: boolean;
}

export interface TerminateResult {
  /** Ids the cloud accepted to terminate, or already gone (unknown ids count as done). */
  readonly accepted: readonly string[];
  /** Ids it refused, with the error. */
  readonly failed: readonly { readonly id: string; readonly error: ProviderError }[];
}

export interface InstanceProvider {
  /** "local", "aws-ec2", "aws-asg". */
  readonly name: string;
  /**
   * `controller`: the controller launches and terminates each instance (local, aws-ec2).
   * `cloud`: the cloud keeps a desired count itself and the controller sets it (aws-asg).
   */
  readonly lifecycle: 'controller' | 'cloud';
  /** True when close() stops every instance (the local provider's children cannot outlive it). */
  readonly instancesEndWithController: boolean;
  /** Start-up check that the group can be driven (template or ASG exists, permissions). Throws ProviderError. */
  verify(groupId: string, bounds: { readonly minSize: number; readonly maxSize: number }): Promise<void>;
  /** Launch `count` instances; resolves when accepted. `lifecycle: 'controller'` only. */
  launch(req: LaunchRequest): Promise<LaunchResult>;
  /** Ask for termination; resolves when accepted. Unknown or already-gone ids are not errors. */
  terminate(req: TerminateRequest): Promise<TerminateResult>;
  /** Set the cloud's desired count. `lifecycle: 'cloud'` only. */
  setDesiredCapacity(req: { readonly groupId: string; readonly desired: number }): Promise<void>;
  /** The group as the provider sees it now (may lag). */
  list(groupId: string): Promise<ProviderListing>;
  /** Release resources (the local provider stops its children: they cannot outlive it). */
  close(): Promise<void>;
}

/** Why a provider call failed, in the controller's vocabulary. */
export type ProviderErrorCode =
  /** The API throttled us (RequestLimitExceeded, Throttling): back off, retry later. */
  | 'Throttled'
  /** No capacity for this instance type / zone (InsufficientInstanceCapacity): try another. */
  | 'InsufficientCapacity'
  /** An account limit (InstanceLimitExceeded, VcpuLimitExceeded). */
  | 'LimitExceeded'
  /** IAM refused (UnauthorizedOperation, AccessDenied): `action` names what to allow. */
  | 'PermissionDenied'
  /** The launch template, ASG or instance does not exist. */
  | 'NotFound'
  /** Our request is wrong for the cloud (bad parameter, template mismatch). */
  | 'InvalidRequest'
  /** Same token, different parameters (IdempotentParameterMismatch). */
  | 'IdempotencyMismatch'
  /** The cloud forbids the action now (ScalingActivityInProgress, ResourceInUse). */
  | 'Conflict'
  /** Network error, timeout or 5xx. */
  | 'Unavailable'
  | 'Unknown';

const RETRYABLE: ReadonlySet<ProviderErrorCode> = new Set(['Throttled', 'InsufficientCapacity', 'Conflict', 'Unavailable']);

/** A provider call failed. The controller records it (code, message) and decides whether to retry. */
export class ProviderError extends Error {
  override name = 'ProviderError';
  /** True when the same call may succeed later without a change of config. */
  readonly retryable: boolean;
  constructor(
    message: string,
    readonly code: ProviderErrorCode,
    readonly groupId: string,
    readonly details: {
      /** The cloud's own error code, e.g. "InsufficientInstanceCapacity". */
      readonly cloudCode?: string | undefined;
      /** The operation that failed, e.g. "ec2:RunInstances" (also the IAM action to allow). */
      readonly action?: string | undefined;
      readonly retryable?: boolean | undefined;
    } = {},
    opts?: ErrorOptions,
  ) {
    super(message, opts);
    this.retryable = details.retryable ?? RETRYABLE.has(code);
  }
}

/** Wrap anything thrown by a provider as a ProviderError (programmer errors keep their message). */
export function asProviderError(err: unknown, groupId: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ProviderError(message, 'Unknown', groupId, {}, { cause: err });
}
