/**
 * What the two AWS providers share: SDK client settings and the classification of AWS errors
 * into ProviderError codes. Errors are classified by `name` (the service's error code) and the
 * HTTP status, never by message text.
 */
import { ProviderError, type ProviderErrorCode } from './types.js';

/** Settings for an AWS SDK client, from config. */
export interface AwsClientSettings {
  /** e.g. "eu-west-1". */
  readonly region: string;
  /** Endpoint override (any EC2- or Auto-Scaling-compatible API; the tests use a loopback server). Empty: AWS's. */
  readonly endpoint: string;
  /** Attempts per call, first included, with the SDK's adaptive retry mode. Default 5. */
  readonly maxAttempts: number;
}

/** SDK client configuration: default credential chain (instance profile on EC2), adaptive retries. */
export function sdkClientConfig(s: AwsClientSettings): { region: string; endpoint?: string; maxAttempts: number; retryMode: 'adaptive' } {
  return { region: s.region, maxAttempts: s.maxAttempts, retryMode: 'adaptive', ...(s.endpoint ? { endpoint: s.endpoint } : {}) };
}

const BY_NAME: Readonly<Record<string, ProviderErrorCode>> = {
  // Throttling (EC2 and Auto Scaling spell it differently).
  RequestLimitExceeded: 'Throttled',
  Throttling: 'Throttled',
  ThrottlingException: 'Throttled',
  TooManyRequestsException: 'Throttled',
  // Capacity.
  InsufficientInstanceCapacity: 'InsufficientCapacity',
  InsufficientHostCapacity: 'InsufficientCapacity',
  InsufficientReservedInstanceCapacity: 'InsufficientCapacity',
  InsufficientCapacityOnHost: 'InsufficientCapacity',
  Unsupported: 'InsufficientCapacity', // "instance type not supported in this zone": try the next type or subnet
  // Account limits.
  InstanceLimitExceeded: 'LimitExceeded',
  VcpuLimitExceeded: 'LimitExceeded',
  MaxSpotInstanceCountExceeded: 'LimitExceeded',
  LimitExceeded: 'LimitExceeded',
  // Permissions.
  UnauthorizedOperation: 'PermissionDenied',
  AccessDenied: 'PermissionDenied',
  AccessDeniedException: 'PermissionDenied',
  AuthFailure: 'PermissionDenied',
  InvalidClientTokenId: 'PermissionDenied',
  SignatureDoesNotMatch: 'PermissionDenied',
  ServiceLinkedRoleFailure: 'PermissionDenied',
  // Missing things.
  'InvalidLaunchTemplateId.NotFound': 'NotFound',
  'InvalidLaunchTemplateName.NotFoundException': 'NotFound',
  'InvalidLaunchTemplateId.VersionNotFound': 'NotFound',
  'InvalidInstanceID.NotFound': 'NotFound',
  'InvalidSubnetID.NotFound': 'NotFound',
  // Our request is wrong.
  IdempotentParameterMismatch: 'IdempotencyMismatch',
  InvalidParameterValue: 'InvalidRequest',
  InvalidParameterCombination: 'InvalidRequest',
  InvalidParameter: 'InvalidRequest',
  MissingParameter: 'InvalidRequest',
  'InvalidInstanceID.Malformed': 'InvalidRequest',
  'InvalidLaunchTemplateId.Malformed': 'InvalidRequest',
  ValidationError: 'InvalidRequest',
  // The cloud is busy with the resource.
  ScalingActivityInProgress: 'Conflict',
  ResourceContention: 'Conflict',
  ResourceInUse: 'Conflict',
  IncorrectInstanceState: 'Conflict',
  // Auto Scaling's modeled faults: the SDK names the error after its shape, not the wire code
  // (wire "ScalingActivityInProgress" arrives as name "ScalingActivityInProgressFault").
  ScalingActivityInProgressFault: 'Conflict',
  ResourceContentionFault: 'Conflict',
  ResourceInUseFault: 'Conflict',
  InstanceRefreshInProgressFault: 'Conflict',
  IdempotentCallInProgressFault: 'Conflict',
  LimitExceededFault: 'LimitExceeded',
  IdempotentParameterMismatchError: 'IdempotencyMismatch',
  InvalidNextToken: 'InvalidRequest',
  // The cloud is down or unreachable.
  InternalError: 'Unavailable',
  InternalFailure: 'Unavailable',
  ServiceUnavailable: 'Unavailable',
  Unavailable: 'Unavailable',
  TimeoutError: 'Unavailable',
  RequestTimeout: 'Unavailable',
};

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/**
 * Turn what an SDK call threw into a ProviderError. `action` is the IAM action of the call (e.g.
 * "ec2:RunInstances"): a PermissionDenied message names it, so the operator knows what to allow.
 */
export function classifyAwsError(err: unknown, groupId: string, action: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const text = typeof e.message === 'string' ? e.message : String(err);
  const status = e.$metadata?.httpStatusCode;
  let code: ProviderErrorCode = BY_NAME[name] ?? 'Unknown';
  if (code === 'Unknown') {
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) code = 'Unavailable';
    else if (status !== undefined && status >= 500) code = 'Unavailable';
    else if (status === 429) code = 'Throttled';
    else if (status === 403) code = 'PermissionDenied';
  }
  const message = code === 'PermissionDenied'
    ? `${action} was refused (${name}): allow ${action} for the controller's IAM role (deploy/iam/ has the policy)`
    : `${action} failed: ${name}: ${text}`;
  return new ProviderError(message, code, groupId, { cloudCode: name, action }, { cause: err });
}
