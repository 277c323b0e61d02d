/**
 * `autoscaler controller` with an AWS provider refuses to start, with exit 78 (EX_CONFIG: systemd
 * does not restart it) and a message naming the key to fix, when the config cannot work: the
 * region missing, the launch template or ASG absent, our bounds outside the ASG's, the IAM role
 * without ec2:RunInstances. Real processes, real SDK, loopback fakes.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAutoScaling, type FakeAutoScaling } from './fake-aws/autoscaling.js';
import { startFakeEc2, type FakeEc2 } from './fake-aws/ec2.js';
import { killAll, runCli, tempDir } from './helpers.js';

let ec2: FakeEc2;
let asg: FakeAutoScaling;
const aws = () => ({ AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true', AWS_MAX_ATTEMPTS: '1' });

beforeAll(async () => {
  ec2 = await startFakeEc2();
  ec2.addLaunchTemplate({ id: 'lt-0123456789abcdef0', name: 'web' });
  asg = await startFakeAutoScaling();
  asg.addGroup({ name: 'web-asg', min: 1, max: 4, desired: 1 });
});
afterAll(async () => {
  killAll();
  await ec2.close();
  await asg.close();
});

describe('controller start-up checks against the cloud', () => {
  it.each([
    {
      name: 'aws-ec2 without a region or a template',
      env: () => ({ CONTROLLER_PROVIDER: 'aws-ec2' }),
      want: ['AWS_REGION: is required with CONTROLLER_PROVIDER=aws-ec2', 'EC2_LAUNCH_TEMPLATE_ID: or EC2_LAUNCH_TEMPLATE_NAME is required'],
    },
    {
      name: 'aws-ec2 with a launch template that does not exist',
      env: () => ({ CONTROLLER_PROVIDER: 'aws-ec2', AWS_REGION: 'us-east-1', AWS_ENDPOINT: ec2.endpoint, EC2_LAUNCH_TEMPLATE_ID: 'lt-0fffffffffffffff0' }),
      want: ['launch template EC2_LAUNCH_TEMPLATE_ID=lt-0fffffffffffffff0 not found'],
    },
    {
      name: 'aws-ec2 whose role may not run instances (the start-up dry run)',
      env: () => { ec2.failNext('RunInstances', 'UnauthorizedOperation'); return { CONTROLLER_PROVIDER: 'aws-ec2', AWS_REGION: 'us-east-1', AWS_ENDPOINT: ec2.endpoint, EC2_LAUNCH_TEMPLATE_ID: 'lt-0123456789abcdef0' }; },
      want: ['ec2:RunInstances was refused (UnauthorizedOperation): allow ec2:RunInstances'],
    },
    {
      name: 'aws-asg with an ASG that does not exist',
      env: () => ({ CONTROLLER_PROVIDER: 'aws-asg', AWS_REGION: 'us-east-1', AWS_ENDPOINT: asg.endpoint, ASG_NAME: 'nope' }),
      want: ['ASG_NAME'],
    },
    {
      name: 'aws-asg with our bounds outside the ASG\'s',
      env: () => ({ CONTROLLER_PROVIDER: 'aws-asg', AWS_REGION: 'us-east-1', AWS_ENDPOINT: asg.endpoint, ASG_NAME: 'web-asg', GROUP_MIN_SIZE: '0', GROUP_MAX_SIZE: '6' }),
      want: ['GROUP_MAX_SIZE=6', 'GROUP_MIN_SIZE=0'],
    },
  ])('$name → exit 78, the key named', async ({ env, want }) => {
    const r = await runCli(['controller'], { AUTOSCALER_DB: join(tempDir(), 'a.db'), ...aws(), ...env() });
    expect(r.code).toBe(78);
    for (const w of want) expect(r.output).toContain(w);
  });
});
