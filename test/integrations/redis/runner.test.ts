import { afterAll, describe, expect, it } from 'vitest';
import { clientKind, toScripting } from '../../../src/integrations/redis/client.js';
import {
  fromIoredis,
  fromNodeRedis,
  type IoredisClient,
  isRedisStoreError,
  type NodeRedisClient,
  type RedisScripting,
  RedisStoreError,
} from '../../../src/integrations/redis/index.js';
import { keyPart, slotKey } from '../../../src/integrations/redis/keys.js';
import { RedisScript, ScriptRunner } from '../../../src/integrations/redis/runner.js';
import { CLIENTS, connect, deleteKeys, disconnect, redisProxy, sleep, uniquePrefix } from './harness.js';

const prefix = uniquePrefix('runner');
afterAll(() => deleteKeys(prefix));

// A fresh source each run (a random comment): the server cannot know it yet, so the first call sees NOSCRIPT.
const fresh = () =>
  new RedisScript(`-- ${Math.random()}\nredis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)\nreturn redis.call('TIME')`);

describe.each(CLIENTS)('ScriptRunner with %s', (name) => {
  it('runs a script (EVALSHA, then EVAL on NOSCRIPT, then EVALSHA), with its keys and arguments', async () => {
    const client = await connect(name);
    try {
      const scripting = toScripting(client);
      expect(clientKind(client)).toBe(name);
      const calls: string[] = [];
      const spy: RedisScripting = {
        ready: () => scripting.ready(),
        evalSha: (sha, k, a) => {
          calls.push('evalSha');
          return scripting.evalSha(sha, k, a);
        },
        eval: (src, k, a) => {
          calls.push('eval');
          return scripting.eval(src, k, a);
        },
      };
      const runner = new ScriptRunner(spy, { timeoutMs: 1_000, recheckMs: 100 });
      const script = fresh();
      const key = `${prefix}{${name}}:a`;
      const reply = await runner.run(script, [key], ['v1']);
      expect(Array.isArray(reply)).toBe(true);
      expect(calls).toEqual(['evalSha', 'eval']);
      await runner.run(script, [key], ['v2']);
      expect(calls).toEqual(['evalSha', 'eval', 'evalSha']);
      expect(runner.healthy).toBe(true);
    } finally {
      await disconnect(client);
    }
  });

  it('rejects with RedisStoreError (reason error, the client error as cause) on an error reply', async () => {
    const client = await connect(name);
    try {
      const runner = new ScriptRunner(toScripting(client), { timeoutMs: 1_000, recheckMs: 0 });
      const e = await runner.run(new RedisScript(`return redis.error_reply('BOOM ${name}')`), [], []).catch((x) => x);
      expect(isRedisStoreError(e)).toBe(true);
      expect((e as RedisStoreError).reason).toBe('error');
      expect((e as RedisStoreError).message).toContain('BOOM');
      expect((e as RedisStoreError).cause).toBeDefined();
    } finally {
      await disconnect(client);
    }
  });

  it('times out within timeoutMs when Redis stops answering, skips it while down, and comes back', async () => {
    const proxy = await redisProxy();
    const client = await connect(name, proxy.port);
    const recovered: number[] = [];
    try {
      const runner = new ScriptRunner(toScripting(client), {
        timeoutMs: 50,
        recheckMs: 100,
        onRecovered: (ms) => recovered.push(ms),
      });
      const script = fresh();
      const key = `${prefix}{${name}-p}:a`;
      await runner.run(script, [key], ['x']);
      proxy.pause();
      const t0 = performance.now();
      const e = await runner.run(script, [key], ['x']).catch((x) => x);
      const took = performance.now() - t0;
      expect((e as RedisStoreError).reason).toBe('timeout');
      expect(took).toBeLessThan(50 + 40);
      // Down: skipped at once until the recheck.
      const e2 = await runner.run(script, [key], ['x']).catch((x) => x);
      expect((e2 as RedisStoreError).reason).toBe('unavailable');
      expect(runner.healthy).toBe(false);
      proxy.resume();
      await sleep(120);
      await runner.run(script, [key], ['x']);
      expect(runner.healthy).toBe(true);
      expect(recovered).toHaveLength(1);
      // Cut: the client notices (not ready) and the call is refused at once, then it reconnects.
      proxy.cut();
      await sleep(30);
      const e3 = await runner.run(script, [key], ['x']).catch((x) => x);
      expect(['not_ready', 'error', 'timeout']).toContain((e3 as RedisStoreError).reason);
      proxy.resume();
      const until = performance.now() + 3_000;
      let ok = false;
      while (!ok && performance.now() < until) {
        ok = await runner.run(script, [key], ['x']).then(
          () => true,
          () => false,
        );
        if (!ok) await sleep(20);
      }
      expect(ok).toBe(true);
      expect(recovered).toHaveLength(2);
    } finally {
      await disconnect(client);
      await proxy.close();
    }
  });
});

describe('client detection and adapters', () => {
  it('recognises each client by shape, and refuses other values without throwing', () => {
    const scripting: RedisScripting = { ready: () => true, evalSha: async () => 1, eval: async () => 1 };
    expect(clientKind(scripting)).toBe('scripting');
    expect(clientKind({})).toBeUndefined();
    expect(clientKind(null)).toBeUndefined();
    expect(
      clientKind(
        new Proxy(
          {},
          {
            get: () => {
              throw new Error('no');
            },
          },
        ),
      ),
    ).toBeUndefined();
    const io: IoredisClient = { status: 'end', evalsha: async () => 1, eval: async () => 1 };
    expect(fromIoredis(io).ready()).toBe(false);
    const nr: NodeRedisClient = { isReady: false, evalSha: async () => 1, eval: async () => 1 };
    expect(fromNodeRedis(nr).ready()).toBe(false);
  });

  it('a client method that throws synchronously is a rejection, not a throw', async () => {
    const runner = new ScriptRunner(
      {
        ready: () => true,
        evalSha: () => {
          throw new Error('sync');
        },
        eval: async () => 1,
      },
      { timeoutMs: 50, recheckMs: 0 },
    );
    const e = await runner.run(new RedisScript('return 1'), [], []).catch((x) => x);
    expect(e).toBeInstanceOf(RedisStoreError);
    expect((e as RedisStoreError).reason).toBe('error');
  });
});

describe('key names', () => {
  it('escapes braces, colons and percents one-to-one, and hashes long or ill-formed parts', () => {
    expect(keyPart('acme')).toBe('acme');
    expect(keyPart('a:{b}%')).toBe('a%3A%7Bb%7D%25');
    expect(keyPart('x'.repeat(10_000))).toMatch(/^%#[\w-]{43}$/);
    expect(keyPart('\uD800')).toMatch(/^%#/);
    expect(keyPart('\uD800')).not.toBe(keyPart('\uDC00'));
    expect(slotKey('p:', 'api', 'acme')).toBe('p:{api:acme}');
    expect(slotKey('p:', 'a:b', 'c')).not.toBe(slotKey('p:', 'a', 'b:c'));
  });
});
