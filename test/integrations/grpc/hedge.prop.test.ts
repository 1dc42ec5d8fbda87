/**
 * A property of hedging inside the gRPC interceptor, against a real grpc-js server: whatever each attempt does
 * (answers, fails with a failure code, fails with a fatal code, sends its headers then fails, or hangs), the caller
 * gets exactly what gRFC A6 says (a model below), the server saw exactly the attempts A6 sends, every attempt that
 * was not answered is cancelled on the server, and no call or timer is left.
 */
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { hedge } from '../../../src/index.js';
import { grpcInterceptor } from '../../../src/integrations/grpc/index.js';
import { FakeClock } from '../../../src/testing/index.js';
import {
  closeAll,
  type GreeterServer,
  greeterClient,
  openCalls,
  PATH,
  startGreeter,
  unary,
  waitFor,
} from './helpers.js';

afterEach(() => closeAll());

type Step = 'ok' | 'down' | 'fatal' | 'headers-then-down' | 'hang';

/** What A6 gives the caller, and how many attempts it sends: a model of the rules, step by step. */
function model(steps: readonly Step[]): { attempts: number; code: number; details: string } {
  for (let i = 0; i < steps.length; i++) {
    const n = i + 1;
    const s = steps[i] as Step;
    if (s === 'ok') return { attempts: n, code: status.OK, details: `#${n}` };
    if (s === 'fatal') return { attempts: n, code: status.INVALID_ARGUMENT, details: `fatal #${n}` };
    // Headers commit the attempt: its failure is final.
    if (s === 'headers-then-down') return { attempts: n, code: status.UNAVAILABLE, details: `down #${n}` };
    // 'down': the next hedge at once; 'hang': the next after the delay.
  }
  // No attempt committed: a hang keeps the call open until its deadline, else every attempt failed.
  return steps.includes('hang')
    ? { attempts: steps.length, code: status.DEADLINE_EXCEEDED, details: '' }
    : { attempts: steps.length, code: status.UNAVAILABLE, details: 'down #1' };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('grpc interceptor hedging: property', () => {
  it('the caller gets what gRFC A6 says; the losers are cancelled; nothing is left', { timeout: 60_000 }, async () => {
    const step = fc.constantFrom<Step>('ok', 'down', 'fatal', 'headers-then-down', 'hang');
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 4 }), async (steps) => {
        const clock = new FakeClock();
        const expected = model(steps);
        let server: GreeterServer | undefined;
        server = await startGreeter({
          SayHello: (hit) => {
            const s = steps[hit.n - 1] as Step;
            if (s === 'ok') return { ok: { message: `#${hit.n}`, attempt: hit.n } };
            if (s === 'down') return { code: status.UNAVAILABLE, details: `down #${hit.n}` };
            if (s === 'fatal') return { code: status.INVALID_ARGUMENT, details: `fatal #${hit.n}` };
            if (s === 'headers-then-down') {
              hit.sendHeaders({ 'x-n': String(hit.n) });
              setImmediate(() => hit.respond({ code: status.UNAVAILABLE, details: `down #${hit.n}` }));
            }
            return 'hang';
          },
        });
        const deadline = Date.now() + 60_000;
        const client = greeterClient(server, [
          grpcInterceptor({
            methods: { [PATH.SayHello]: hedge({ delayMs: 1_000, maxHedgedAttempts: steps.length - 1, clock }) },
            clock,
            wallClock: () => deadline - steps.length * 1_000 + clock.now(),
          }),
        ]);
        const pending = unary(client, 'SayHello', { name: 'p' }, { deadline });
        const s = server;
        // The clock moves only once every attempt sent so far has done what it does (an answer reaches the client
        // before a delay can pass): the numbers of the hung attempts, up to the one that commits.
        const hangs = steps.slice(0, expected.attempts).flatMap((x, i) => (x === 'hang' ? [i + 1] : []));
        for (const h of hangs) {
          await waitFor(() => pending.settled !== undefined || s.hits.length >= h, `attempt ${h}`);
          if (pending.settled !== undefined) break;
          await clock.advance(1_000);
        }
        await waitFor(() => pending.settled !== undefined || s.hits.length >= expected.attempts, 'every attempt');
        if (expected.code === status.DEADLINE_EXCEEDED) await clock.advance(steps.length * 1_000 - clock.now());
        const { error, value } = await pending.result;
        expect(
          error === null ? { code: status.OK, details: value?.message } : { code: error.code, details: error.details },
        ).toEqual(
          expected.code === status.DEADLINE_EXCEEDED
            ? { code: status.DEADLINE_EXCEEDED, details: expect.any(String) }
            : { code: expected.code, details: expected.details },
        );
        await waitFor(() => s.hits.every((h) => h.answered || h.cancelled), 'every attempt answered or cancelled');
        expect(s.hits).toHaveLength(expected.attempts);
        expect(s.hits.map((h) => h.metadata.get('grpc-previous-rpc-attempts')[0])).toEqual(
          s.hits.map((_, i) => (i === 0 ? undefined : String(i))),
        );
        expect(openCalls(client)).toBe(0);
        await clock.runAll();
        await settle();
        expect(clock.pendingTimers).toBe(0);
        expect(s.hits).toHaveLength(expected.attempts);
        closeAll();
        server = undefined;
      }),
      { numRuns: 40 },
    );
  });
});
