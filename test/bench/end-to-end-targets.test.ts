/** The HTTP and gRPC suites' targets, shown beside what composing an interceptor that does nothing costs. */
import { describe, expect, it } from 'vitest';
import { evaluateTargets, terminalReport } from '../../bench/report.js';
import { GRPC_EMPTY_INTERCEPTOR, GRPC_INTERCEPTOR, type GrpcRow } from '../../bench/suites/grpc.js';
import { HTTP_EMPTY_INTERCEPTOR, HTTP_INTERCEPTOR, type HttpRow } from '../../bench/suites/http.js';
import { resultsWith } from './results-fixture.js';

const http = (contender: string, cpuUsOverBare?: number, throughputRatio = 1, ownUsOverBare?: number): HttpRow => ({
  contender,
  requests: 4_000,
  reqPerSec: 50_000 * throughputRatio,
  p50Ms: 1,
  p99Ms: 2,
  throughputRatio,
  p99Ratio: 1,
  ...(cpuUsOverBare === undefined ? {} : { cpuUsPerReq: 20 + cpuUsOverBare, cpuUsOverBare }),
  ...(ownUsOverBare === undefined ? {} : { ownUsPerCall: 4 + ownUsOverBare, ownUsOverBare }),
});

const grpc = (contender: string, cpuUsOverBare?: number, throughputRatio = 1, ownUsOverBare?: number): GrpcRow => ({
  contender,
  calls: 4_000,
  callsPerSec: 9_000 * throughputRatio,
  p50Ms: 5,
  p99Ms: 20,
  throughputRatio,
  p99Ratio: 1,
  ...(cpuUsOverBare === undefined ? {} : { cpuUsPerReq: 100 + cpuUsOverBare, cpuUsOverBare }),
  ...(ownUsOverBare === undefined ? {} : { ownUsPerCall: 7 + ownUsOverBare, ownUsOverBare }),
});

const cpuTargets = (targets: ReturnType<typeof evaluateTargets>) =>
  targets.filter((t) => t.what.includes('client CPU per')).map((t) => [t.what.split(':')[0], t.measured, t.met, t.by]);

const throughputTargets = (targets: ReturnType<typeof evaluateTargets>) =>
  targets
    .filter((t) => /(req|calls)\/s ratio to bare/.test(t.what))
    .map((t) => [t.what.split(':')[0], t.measured, t.met]);

describe('end-to-end targets', () => {
  it('show the throughput of the empty interceptor of the same rounds beside the figure, and judge the figure alone', () => {
    const targets = evaluateTargets(
      resultsWith({
        http: [http('bare undici', 0), http(HTTP_EMPTY_INTERCEPTOR, 3, 0.85), http(HTTP_INTERCEPTOR, 1, 0.97)],
        grpc: [grpc('bare grpc-js', 0), grpc(GRPC_EMPTY_INTERCEPTOR, 8, 0.93), grpc(GRPC_INTERCEPTOR, 9, 0.911)],
      }),
    );
    expect(throughputTargets(targets)).toEqual([
      ['HTTP', '0.970 (floor: empty interceptor 0.850)', true],
      ['gRPC', '0.911 (floor: empty interceptor 0.930)', false],
    ]);
  });

  it('show the empty interceptor of the same rounds beside the figure, and judge the figure alone', () => {
    const targets = evaluateTargets(
      resultsWith({
        http: [http('bare undici', 0), http(HTTP_EMPTY_INTERCEPTOR, 1.25), http(HTTP_INTERCEPTOR, 1.5)],
        grpc: [grpc('bare grpc-js', 0), grpc(GRPC_EMPTY_INTERCEPTOR, 4), grpc(GRPC_INTERCEPTOR, 5.4)],
      }),
    );
    expect(cpuTargets(targets)).toEqual([
      ['HTTP', '+1.5 µs (floor: empty interceptor +1.3 µs)', true, ''],
      ['gRPC', '+5.4 µs (floor: empty interceptor +4.0 µs)', false, '3.4 µs over'],
    ]);
  });

  it('without an empty interceptor row (or its CPU), the figure alone', () => {
    const targets = evaluateTargets(
      resultsWith({
        http: [http('bare undici', 0), http(HTTP_INTERCEPTOR, 2.5)],
        grpc: [grpc('bare grpc-js', 0), grpc(GRPC_EMPTY_INTERCEPTOR), grpc(GRPC_INTERCEPTOR, -0.4)],
      }),
    );
    expect(cpuTargets(targets)).toEqual([
      ['HTTP', '+2.5 µs', false, '0.5 µs over'],
      ['gRPC', '-0.4 µs', true, ''],
    ]);
  });

  it('judge the CPU in process when the run measured it there, beside the empty interceptor in process', () => {
    const targets = evaluateTargets(
      resultsWith({
        http: [
          http('bare undici', 0, 1, 0),
          http(HTTP_EMPTY_INTERCEPTOR, 2.6, 0.88, 0.16),
          http(HTTP_INTERCEPTOR, 0.6, 0.95, 1.18),
        ],
        grpc: [
          grpc('bare grpc-js', 0, 1, 0),
          grpc(GRPC_EMPTY_INTERCEPTOR, -13.6, 1, 0.1),
          grpc(GRPC_INTERCEPTOR, 11.5, 0.97, 0.62),
        ],
      }),
    );
    expect(cpuTargets(targets)).toEqual([
      ['HTTP', '+1.2 µs (floor: empty interceptor +0.2 µs)', true, ''],
      ['gRPC', '+0.6 µs (floor: empty interceptor +0.1 µs)', true, ''],
    ]);
    expect(targets.filter((t) => t.what.includes('CPU')).map((t) => t.what)).toEqual([
      'HTTP: interceptor with the full pipeline, client CPU per request over bare undici, in process (fake transport)',
      'gRPC: interceptor with the full pipeline, client CPU per call over bare grpc-js, in process (fake transport)',
    ]);
    // Judged on the in-process figure alone: a miss there is a miss, whatever the end-to-end one says.
    const over = evaluateTargets(
      resultsWith({ grpc: [grpc('bare grpc-js', 0, 1, 0), grpc(GRPC_INTERCEPTOR, 0.5, 1, 2.4)] }),
    );
    expect(cpuTargets(over)).toEqual([['gRPC', '+2.4 µs', false, '0.4 µs over']]);
  });

  it('show the in-process columns in the gRPC table only for runs that measured them', () => {
    const withOwn = terminalReport(
      resultsWith({ grpc: [grpc('bare grpc-js', 0, 1, 0), grpc(GRPC_INTERCEPTOR, 11.5, 0.97, 0.62)] }),
    );
    expect(withOwn).toMatch(/in process: CPU\/call\s+over bare/);
    const http0 = terminalReport(
      resultsWith({ http: [http('bare undici', 0, 1, 0), http(HTTP_INTERCEPTOR, 0.6, 0.95, 1.18)] }),
    );
    expect(http0).toMatch(/client CPU\/req\s+CPU over bare\s+in process: CPU\/req\s+over bare/);
    expect(withOwn).toMatch(/bulwark interceptor, pipeline\(4\).*7\.6 µs\s+\+0\.6 µs/);
    const without = terminalReport(resultsWith({ grpc: [grpc('bare grpc-js', 0), grpc(GRPC_INTERCEPTOR, 1.5)] }));
    expect(without).toContain('CPU over bare');
    expect(without).not.toContain('in process');
  });
});
