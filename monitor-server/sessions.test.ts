import { describe, expect, it } from 'vitest';
import { SessionTable, type Session } from './sessions.js';

const session = (id: string, instanceId: string, groupId: string): Session => ({
  id, instanceId, groupId, identity: 'test', certFingerprint: undefined, createdAt: 0,
  call: undefined, acks: undefined, receivedSeq: 0, ackedSeq: 0, rejected: 0, rejectReason: '',
});

describe('SessionTable', () => {
  it('keeps the sessions of each group exact through adds, supersedes and removes', () => {
    const t = new SessionTable();
    const a1 = session('s1', 'i-1', 'a');
    const a2 = session('s2', 'i-2', 'a');
    const b1 = session('s3', 'i-3', 'b');
    t.add(a1);
    t.add(a2);
    t.add(b1);
    expect([...t.groups()].sort()).toEqual(['a', 'b']);
    expect([...t.inGroup('a')]).toEqual([a1, a2]);
    // A re-registration: the new session is current; the old one stays until it is removed.
    const a1b = session('s4', 'i-1', 'a');
    t.add(a1b);
    expect(t.current('i-1')).toBe(a1b);
    expect(t.remove(a1)).toBe(false); // not the instance's current session
    expect([...t.inGroup('a')]).toEqual([a2, a1b]);
    expect(t.remove(a1)).toBe(false); // twice: nothing left to remove
    expect(t.remove(b1)).toBe(true);
    expect([...t.groups()]).toEqual(['a']);
    expect(t.inGroup('b').size).toBe(0);
    t.remove(a2);
    t.remove(a1b);
    expect([...t.groups()]).toEqual([]);
    expect(t.size).toBe(0);
  });
});
