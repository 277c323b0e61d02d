import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { monitorProto, SESSION_METADATA_KEY as PROTO_SESSION_KEY } from '../lib/proto.js';
import {
  decodeDeregisterResponse, decodeHeartbeatAck, decodeRegisterResponse, encodeDeregisterRequest, encodeHeartbeat, encodeRegisterRequest,
  SESSION_METADATA_KEY, WireError, type HeartbeatIn, type RegisterRequestIn,
} from './wire.js';

// The reference: protobufjs through @grpc/proto-loader, as the monitor server uses it.
const service = monitorProto().monitor.v1.Monitor.service;
const pb = {
  register: service.Register,
  heartbeats: service.Heartbeats,
  deregister: service.Deregister,
};

const safeUint = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const anyString = fc.string({ unit: 'grapheme', maxLength: 40 });
const finiteDouble = fc.double({ noNaN: true });

describe('agent/wire.ts against protobufjs', () => {
  it('the session metadata key is lib/proto.ts\'s', () => {
    expect(SESSION_METADATA_KEY).toBe(PROTO_SESSION_KEY);
  });

  it.each([
    { name: 'all fields', m: { instance_id: 'i-0123456789abcdef0', group_id: 'web', agent_version: '0.1.0', address: '10.0.1.5' } },
    { name: 'empty strings (proto3 defaults, left out)', m: { instance_id: '', group_id: '', agent_version: '', address: '' } },
    { name: 'non-ASCII and a 300-byte field (2-byte length)', m: { instance_id: 'agent-é-😀', group_id: 'g', agent_version: 'x'.repeat(300), address: '[::1]' } },
  ])('RegisterRequest: $name', ({ m }) => {
    expect(pb.register.requestDeserialize(encodeRegisterRequest(m))).toEqual(m);
  });

  it('RegisterRequest: any strings', () => {
    fc.assert(fc.property(fc.record({ instance_id: anyString, group_id: anyString, agent_version: anyString, address: anyString }), (m: RegisterRequestIn) => {
      expect(pb.register.requestDeserialize(encodeRegisterRequest(m))).toEqual(m);
    }), { seed: 42, numRuns: 200 });
  });

  it.each([
    { name: 'a heartbeat', m: { seq: 17, sample_time_ms: 1_764_640_000_123, cpu_percent: 42.5, mem_percent: 31.25 } },
    { name: 'zeros (left out, decoded as defaults)', m: { seq: 0, sample_time_ms: 0, cpu_percent: 0, mem_percent: 0 } },
    { name: 'the largest safe seq (8-byte varint)', m: { seq: Number.MAX_SAFE_INTEGER, sample_time_ms: 1, cpu_percent: 100, mem_percent: 100 } },
    { name: 'a negative time (10-byte two\'s complement varint)', m: { seq: 1, sample_time_ms: -5, cpu_percent: 1e-9, mem_percent: 99.999 } },
    { name: 'NaN goes out as NaN (the server refuses it)', m: { seq: 2, sample_time_ms: 2, cpu_percent: Number.NaN, mem_percent: 1 } },
  ])('Heartbeat: $name', ({ m }) => {
    expect(pb.heartbeats.requestDeserialize(encodeHeartbeat(m))).toEqual({
      seq: String(m.seq), sample_time_ms: String(m.sample_time_ms), cpu_percent: m.cpu_percent, mem_percent: m.mem_percent,
    });
  });

  it('Heartbeat: any safe seq and time, any finite percentages', () => {
    fc.assert(fc.property(fc.record({ seq: safeUint, sample_time_ms: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), cpu_percent: finiteDouble, mem_percent: finiteDouble }), (m: HeartbeatIn) => {
      expect(pb.heartbeats.requestDeserialize(encodeHeartbeat(m))).toEqual({
        seq: String(m.seq), sample_time_ms: String(m.sample_time_ms), cpu_percent: m.cpu_percent, mem_percent: m.mem_percent,
      });
    }), { seed: 42, numRuns: 300 });
  });

  it('Heartbeat: an unsafe integer is a programming error (TypeError)', () => {
    expect(() => encodeHeartbeat({ seq: 2 ** 64, sample_time_ms: 0, cpu_percent: 0, mem_percent: 0 })).toThrow(TypeError);
    expect(() => encodeHeartbeat({ seq: 1.5, sample_time_ms: 0, cpu_percent: 0, mem_percent: 0 })).toThrow(TypeError);
  });

  it('DeregisterRequest', () => {
    const m = { session_id: 's-1', instance_id: 'agent-1', reason: 'SIGTERM' };
    expect(pb.deregister.requestDeserialize(encodeDeregisterRequest(m))).toEqual(m);
  });

  it.each([
    { name: 'all fields', m: { session_id: 'abc', heartbeat_interval_ms: 1_000, last_seq: '123456789012' } },
    { name: 'defaults', m: {} },
    { name: 'a last_seq beyond 2^53 stays exact', m: { session_id: 'x', heartbeat_interval_ms: 4_294_967_295, last_seq: '18446744073709551615' } },
  ])('RegisterResponse: $name', ({ m }) => {
    const bytes = pb.register.responseSerialize(m);
    expect(decodeRegisterResponse(bytes)).toEqual(pb.register.responseDeserialize(bytes));
  });

  it.each([
    { name: 'an ack with a group view', m: { persisted_seq: '42', rejected: 2, reject_reason: 'cpu_percent must be within 0..100', group: { live_instances: 3, demand_percent: 150.5, as_of_ms: '1764640000000' } } },
    { name: 'an ack without a group (null, as protobufjs gives it)', m: { persisted_seq: '7' } },
    { name: 'no demand: a negative demand and an empty group view', m: { persisted_seq: '1', group: { demand_percent: -1 } } },
    { name: 'a negative as_of_ms', m: { group: { live_instances: 1, as_of_ms: '-1' } } },
  ])('HeartbeatAck: $name', ({ m }) => {
    const bytes = pb.heartbeats.responseSerialize(m);
    expect(decodeHeartbeatAck(bytes)).toEqual(pb.heartbeats.responseDeserialize(bytes));
  });

  it('HeartbeatAck: any values', () => {
    const group = fc.option(fc.record({ live_instances: fc.integer({ min: 0, max: 2 ** 32 - 1 }), demand_percent: finiteDouble, as_of_ms: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String) }), { nil: null });
    fc.assert(fc.property(fc.record({ persisted_seq: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), rejected: fc.integer({ min: 0, max: 2 ** 32 - 1 }), reject_reason: anyString, group }), (m) => {
      const bytes = pb.heartbeats.responseSerialize(m);
      expect(decodeHeartbeatAck(bytes)).toEqual(pb.heartbeats.responseDeserialize(bytes));
    }), { seed: 42, numRuns: 300 });
  });

  it('DeregisterResponse', () => {
    expect(decodeDeregisterResponse(pb.deregister.responseSerialize({}))).toEqual({});
  });
});

describe('agent/wire.ts decoding what a newer server may send', () => {
  it('skips unknown fields of every wire type', () => {
    const known = pb.heartbeats.responseSerialize({ persisted_seq: '9', rejected: 1 });
    const unknown = Buffer.from([
      0x28, 0x96, 0x01, // field 5, varint 150
      0x31, 1, 2, 3, 4, 5, 6, 7, 8, // field 6, 64-bit
      0x3a, 0x02, 0x68, 0x69, // field 7, length-delimited "hi"
      0x45, 1, 2, 3, 4, // field 8, 32-bit
    ]);
    expect(decodeHeartbeatAck(Buffer.concat([unknown, known]))).toEqual({ persisted_seq: '9', rejected: 1, reject_reason: '', group: null });
  });

  it('merges a message field sent twice (protobuf rules)', () => {
    const a = pb.heartbeats.responseSerialize({ group: { live_instances: 4 } });
    const b = pb.heartbeats.responseSerialize({ group: { demand_percent: 80 } });
    expect(decodeHeartbeatAck(Buffer.concat([a, b]))).toEqual({ persisted_seq: '0', rejected: 0, reject_reason: '', group: { live_instances: 4, demand_percent: 80, as_of_ms: '0' } });
  });

  it.each([
    { name: 'a truncated varint', bytes: [0x08, 0x96] },
    { name: 'a string longer than the message', bytes: [0x1a, 0x05, 0x61] },
    { name: 'a truncated double inside the group', bytes: [0x22, 0x03, 0x11, 0x00, 0x00] },
    { name: 'field number 0', bytes: [0x00, 0x01] },
    { name: 'a group wire type (3)', bytes: [0x0b] },
    { name: 'an 11-byte varint', bytes: [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01] },
  ])('$name: a WireError (grpc-js fails the call)', ({ bytes }) => {
    expect(() => decodeHeartbeatAck(Buffer.from(bytes))).toThrow(WireError);
  });
});
