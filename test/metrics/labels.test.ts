import { status } from '@grpc/grpc-js';
import type { MeterProvider } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  InMemoryMetricExporter,
  type MetricData,
  PeriodicExportingMetricReader,
  MeterProvider as SdkMeterProvider,
} from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { constant, type Operation, retry, TimeoutError, timeout } from '../../src/index.js';
import { GrpcStatusError, grpcInterceptor } from '../../src/integrations/grpc/index.js';
import { HttpStatusError, interceptor } from '../../src/integrations/undici/index.js';
import { openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { defaultErrorType, prometheusMetrics } from '../../src/metrics/prometheus.js';
import { FakeClock } from '../../src/testing/index.js';
import { track } from '../helpers/deferred.js';
import { closeAll, greeterClient, PATH, startGreeter, unary } from '../integrations/grpc/helpers.js';
import { Resources, reply, startServer } from '../integrations/undici/helpers.js';

const resources = new Resources();
const providers: SdkMeterProvider[] = [];
afterEach(async () => {
  await resources.closeAll();
  closeAll();
  for (const p of providers.splice(0)) await p.shutdown();
});

/** The lines of the exposition text whose metric name is `name`. */
async function series(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

/** A real OpenTelemetry SDK MeterProvider, collected on demand. */
function sdk(): { provider: MeterProvider; collect: () => Promise<Map<string, MetricData>> } {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new SdkMeterProvider({ readers: [reader] });
  providers.push(provider);
  return {
    provider,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      const out = new Map<string, MetricData>();
      for (const scope of exporter.getMetrics().at(-1)?.scopeMetrics ?? []) {
        for (const m of scope.metrics) out.set(m.descriptor.name, m);
      }
      return out;
    },
  };
}

/** The data points of an OpenTelemetry counter: attributes and value. */
function points(m: MetricData | undefined): { attributes: Record<string, unknown>; value: number }[] {
  return ((m?.dataPoints ?? []) as DataPoint<number>[]).map((p) => ({
    attributes: { ...p.attributes },
    value: p.value,
  }));
}

describe('error_type of a failed HTTP response', () => {
  it('carries the status (http_503) on retries, attempts and the execution, through the undici interceptor', async () => {
    const server = resources.add(await startServer((_req, res, hit) => reply(res, hit.n < 3 ? 503 : 200, `#${hit.n}`)));
    const registry = new Registry();
    const policy = retry({ name: 'http-retry', maxAttempts: 3, backoff: constant(0) });
    const metrics = prometheusMetrics({ registry });
    metrics.attach(policy);
    const agent = resources.add(new Agent());
    const res = await agent
      .compose(interceptor({ policy }))
      .request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('#3');

    expect(await series(registry, 'bulwark_events_total')).toEqual([
      'bulwark_events_total{policy="http-retry",operation="GET",event="retry.attempt",error_type="http_503"} 2',
    ]);
    expect(await series(registry, 'bulwark_attempt_duration_seconds_count')).toEqual([
      'bulwark_attempt_duration_seconds_count{policy="http-retry",operation="GET",result="failure",error_type="http_503"} 2',
      'bulwark_attempt_duration_seconds_count{policy="http-retry",operation="GET",result="success"} 1',
    ]);
    metrics.close();
  });

  it('an exhausted call: the execution is a failure labelled with the last status, on both adapters', async () => {
    const server = resources.add(await startServer((_req, res) => reply(res, 502, 'bad gateway')));
    const registry = new Registry();
    const { provider, collect } = sdk();
    const policy = retry({ name: 'http-retry', maxAttempts: 2, backoff: constant(0) });
    const prom = prometheusMetrics({ registry });
    const otel = openTelemetryMetrics({ meterProvider: provider });
    prom.attach(policy);
    otel.attach(policy);
    const agent = resources.add(new Agent());
    const res = await agent
      .compose(interceptor({ policy }))
      .request({ origin: server.origin, path: '/', method: 'GET' });
    expect(res.statusCode).toBe(502); // the caller gets the response itself
    await res.body.dump();

    expect(await series(registry, 'bulwark_execution_duration_seconds_count')).toEqual([
      'bulwark_execution_duration_seconds_count{policy="http-retry",operation="GET",result="failure",error_type="http_502"} 1',
    ]);
    expect(await series(registry, 'bulwark_events_total')).toEqual([
      'bulwark_events_total{policy="http-retry",operation="GET",event="retry.attempt",error_type="http_502"} 1',
      'bulwark_events_total{policy="http-retry",operation="GET",event="retry.exhausted",error_type="http_502",reason="attempts"} 1',
    ]);
    const events = points((await collect()).get('bulwark.events'));
    expect(events.map((p) => [p.attributes['bulwark.event.name'], p.attributes['error.type'], p.value])).toEqual([
      ['retry.attempt', 'http_502', 1],
      ['retry.exhausted', 'http_502', 1],
    ]);
    prom.close();
    otel.close();
  });

  it('defaultErrorType: http_<status> for any status 100-599, the class name for anything else', () => {
    const http = (s: number) => new HttpStatusError(s, {}, undefined, true, undefined);
    expect(defaultErrorType(http(503))).toBe('http_503');
    expect(defaultErrorType(http(429))).toBe('http_429');
    expect(defaultErrorType(http(100))).toBe('http_100');
    expect(defaultErrorType(http(599))).toBe('http_599');
    // Not a status HTTP defines: bounded all the same.
    for (const s of [0, 99, 600, 1_000, 503.5, Number.NaN, -503])
      expect(defaultErrorType(http(s))).toBe('HttpStatusError');
    // An unrelated error that merely has a `status` is not an HTTP response.
    expect(defaultErrorType(Object.assign(new Error('x'), { status: 503 }))).toBe('Error');
  });
});

describe('error_type of a failed gRPC call', () => {
  it('carries the status name (grpc_UNAVAILABLE) through the gRPC interceptor, on both adapters', async () => {
    const server = await startGreeter({
      SayHello: (hit) =>
        hit.n < 2 ? { code: status.UNAVAILABLE, details: 'down' } : { ok: { message: 'hi', attempt: hit.n } },
    });
    const registry = new Registry();
    const { provider, collect } = sdk();
    const policy = retry({ name: 'grpc-retry', maxAttempts: 3, backoff: constant(0) });
    const prom = prometheusMetrics({ registry });
    const otel = openTelemetryMetrics({ meterProvider: provider });
    prom.attach(policy);
    otel.attach(policy);
    const client = greeterClient(server, [grpcInterceptor({ methods: { [PATH.SayHello]: policy } })]);
    const result = await unary(client, 'SayHello', { name: 'a' }).result;
    expect(result.error).toBeNull();

    const lines = await series(registry, 'bulwark_events_total');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/event="retry.attempt",error_type="grpc_UNAVAILABLE"} 1$/);
    const events = points((await collect()).get('bulwark.events'));
    expect(events.map((p) => [p.attributes['error.type'], p.value])).toEqual([['grpc_UNAVAILABLE', 1]]);
    prom.close();
    otel.close();
  });

  it('defaultErrorType: grpc_<NAME> for the 17 status codes, the class name for anything else', () => {
    const grpc = (code: number) =>
      new GrpcStatusError({ code, details: 'd', metadata: undefined as never }, undefined, true);
    expect(defaultErrorType(grpc(status.UNAVAILABLE))).toBe('grpc_UNAVAILABLE');
    expect(defaultErrorType(grpc(status.DEADLINE_EXCEEDED))).toBe('grpc_DEADLINE_EXCEEDED');
    expect(defaultErrorType(grpc(status.UNAUTHENTICATED))).toBe('grpc_UNAUTHENTICATED');
    for (const code of [17, -1, 2.5]) expect(defaultErrorType(grpc(code))).toBe('GrpcStatusError');
  });
});

describe('timeout.late_outcome is not a second timeout', () => {
  /** A timeout of 100 ms on a fake clock; the work settles at 150 ms as `settle` says, honouring the signal or not. */
  async function lateOutcomes(settle: 'honour-abort' | 'own-error' | 'value') {
    const clock = new FakeClock();
    const registry = new Registry();
    const { provider, collect } = sdk();
    const policy = timeout({ name: 't', ms: 100, clock });
    const prom = prometheusMetrics({ registry });
    const otel = openTelemetryMetrics({ meterProvider: provider });
    prom.attach(policy);
    otel.attach(policy);
    const work: Operation<string> = (ctx) =>
      new Promise<string>((resolve, reject) => {
        clock.setTimeout(() => {
          if (settle === 'honour-abort') reject(ctx.signal.reason);
          else if (settle === 'own-error') reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
          else resolve('late');
        }, 150);
      });
    const t = track(policy.execute(work, { operation: 'op' }));
    await clock.runAll();
    expect(t.error).toBeInstanceOf(TimeoutError);
    const lines = await series(registry, 'bulwark_events_total');
    const otelEvents = points((await collect()).get('bulwark.events')).map((p) => p.attributes);
    prom.close();
    otel.close();
    return { lines, otelEvents };
  }

  it('work that honours the abort rejects with the TimeoutError: counted as aborted, not as ERR_TIMEOUT', async () => {
    const { lines, otelEvents } = await lateOutcomes('honour-abort');
    expect(lines).toEqual([
      'bulwark_events_total{policy="t",operation="op",event="timeout.fired"} 1',
      'bulwark_events_total{policy="t",operation="op",event="timeout.late_outcome",reason="aborted"} 1',
    ]);
    expect(otelEvents).toEqual([
      { 'bulwark.policy.name': 't', 'bulwark.operation.name': 'op', 'bulwark.event.name': 'timeout.fired' },
      {
        'bulwark.policy.name': 't',
        'bulwark.operation.name': 'op',
        'bulwark.event.name': 'timeout.late_outcome',
        'bulwark.reason': 'aborted',
      },
    ]);
  });

  it('a late failure of its own keeps its error_type (reason failure); a late value is reason success', async () => {
    expect((await lateOutcomes('own-error')).lines).toEqual([
      'bulwark_events_total{policy="t",operation="op",event="timeout.fired"} 1',
      'bulwark_events_total{policy="t",operation="op",event="timeout.late_outcome",error_type="ECONNRESET",reason="failure"} 1',
    ]);
    const value = await lateOutcomes('value');
    expect(value.lines).toEqual([
      'bulwark_events_total{policy="t",operation="op",event="timeout.fired"} 1',
      'bulwark_events_total{policy="t",operation="op",event="timeout.late_outcome",reason="success"} 1',
    ]);
    expect(value.otelEvents[1]?.['bulwark.reason']).toBe('success');
  });

  it('work abandoned by a caller abort that rejects with the caller reason (AbortError) is aborted too', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const policy = timeout({ name: 't', ms: 1_000, clock });
    const prom = prometheusMetrics({ registry });
    prom.attach(policy);
    const ac = new AbortController();
    const t = track(
      policy.execute(
        (ctx) =>
          new Promise<string>((_resolve, reject) =>
            ctx.signal.addEventListener('abort', () => clock.setTimeout(() => reject(ctx.signal.reason), 10)),
          ),
        { operation: 'op', signal: ac.signal },
      ),
    );
    ac.abort();
    await clock.runAll();
    expect((t.error as Error).name).toBe('AbortError');
    expect(await series(registry, 'bulwark_events_total')).toEqual([
      'bulwark_events_total{policy="t",operation="op",event="timeout.late_outcome",reason="aborted"} 1',
    ]);
    prom.close();
  });
});
