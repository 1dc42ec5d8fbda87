/**
 * Suite 4: what observing costs on the full pipeline: no listener, one listener, a diagnostics_channel subscriber,
 * and each metrics adapter attached to the pipeline or process-wide (real OpenTelemetry SDK, real prom-client;
 * for OpenTelemetry both paths: instruments on a Meter, and the opt-in MetricProducer read by the same reader).
 * Two floors beside them: a no-op listener on every event type (what an adapter subscribes to, so what the policies
 * pay to emit before any adapter code runs), and the two `Histogram.record` calls an observed call makes on the
 * OpenTelemetry SDK, on their own after the unobserved call (no OpenTelemetry adapter can cost less).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import { bulkhead, channelName, circuitBreaker, EVENT_TYPES, pipeline, retry, timeout } from '../../src/index.js';
import { openTelemetryMetricProducer, openTelemetryMetrics } from '../../src/metrics/opentelemetry.js';
import { prometheusMetrics } from '../../src/metrics/prometheus.js';
import { median, nsPerCall, progress, roundOrder, type Settings } from '../harness.js';

export interface EventsRow {
  readonly case: string;
  readonly ns: number;
  readonly overNoListenerNs: number;
}

/** The case names the targets read (bench/report.ts). */
export const EVENTS_CASES = {
  none: 'no listener',
  everyEvent: 'no-op listener on every event type (what an adapter subscribes to)',
  otelRecords: 'no listener, then 2 Histogram.record on the OpenTelemetry SDK (its floor)',
  otelAttached: 'openTelemetryMetrics, attach(pipeline)',
  otelAll: 'openTelemetryMetrics, attachAll()',
  producerAttached: 'openTelemetryMetricProducer, attach(pipeline)',
  producerAll: 'openTelemetryMetricProducer, attachAll()',
  promAttached: 'prometheusMetrics, attach(pipeline)',
  promAll: 'prometheusMetrics, attachAll()',
} as const;

const op = async () => 1;
const make = () => pipeline(retry(), circuitBreaker(), timeout(60_000), bulkhead({ limit: 1_000 }));

interface Case {
  readonly name: string;
  readonly call: () => Promise<unknown>;
  /** Process-wide subscriptions are made only while the case runs (they would observe every other case too). */
  readonly around?: () => () => void;
}

export async function eventsSuite(s: Settings, step: string): Promise<EventsRow[]> {
  const quiet = make();
  const listened = make();
  let count = 0;
  listened.on('execution.completed', () => {
    count++;
  });
  const everyEvent = make();
  const noop = () => {};
  for (const type of EVENT_TYPES) everyEvent.on(type, noop);
  const channelled = make();
  const onMessage = () => {
    count++;
  };

  // A real SDK pipeline: measurements aggregate in memory; the reader exports only when asked (after the runs).
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // The opt-in fast path: bulwark aggregates, the reader takes its data points as a MetricProducer.
  const producer = openTelemetryMetricProducer({ prefix: 'producer' });
  const producerAll = openTelemetryMetricProducer({ prefix: 'producer_all' });
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: 3_600_000,
    metricProducers: [producer, producerAll],
  });
  const provider = new MeterProvider({ readers: [reader] });
  const otelAttached = make();
  const otel = openTelemetryMetrics({ meterProvider: provider });
  otel.attach(otelAttached);
  const otelAll = openTelemetryMetrics({ meterProvider: provider, prefix: 'all' });
  const otelAllPipeline = make();
  const producerAttached = make();
  producer.attach(producerAttached);
  const producerAllPipeline = make();
  // The same instruments, attributes and boundaries as the adapter's duration histograms, one attributes object per
  // series made once: the SDK's own cost per sample.
  const floorMeter = provider.getMeter('floor');
  const boundaries = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60];
  const floorExecution = floorMeter.createHistogram('floor.execution.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: boundaries },
  });
  const floorAttempt = floorMeter.createHistogram('floor.attempt.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: boundaries },
  });
  const floorExecutionAttributes = {
    'bulwark.policy.name': 'retry>circuit-breaker>timeout>bulkhead',
    'bulwark.operation.name': 'default',
    'bulwark.result': 'success',
  };
  const floorAttemptAttributes = { ...floorExecutionAttributes, 'bulwark.policy.name': 'retry' };
  const recorded = (v: unknown) => {
    floorExecution.record(1e-6, floorExecutionAttributes);
    floorAttempt.record(1e-6, floorAttemptAttributes);
    return v;
  };

  const registry = new Registry();
  const promAttached = make();
  const prom = prometheusMetrics({ registry });
  prom.attach(promAttached);
  const promAll = prometheusMetrics({ registry, prefix: 'all' });
  const promAllPipeline = make();

  const cases: Case[] = [
    { name: EVENTS_CASES.none, call: () => quiet.execute(op) },
    { name: "one policy.on('execution.completed') listener", call: () => listened.execute(op) },
    { name: EVENTS_CASES.everyEvent, call: () => everyEvent.execute(op) },
    {
      name: 'diagnostics_channel subscriber (bulwark:execution:completed)',
      call: () => channelled.execute(op),
      around: () => {
        subscribe(channelName('execution.completed'), onMessage);
        return () => unsubscribe(channelName('execution.completed'), onMessage);
      },
    },
    { name: EVENTS_CASES.otelRecords, call: () => quiet.execute(op).then(recorded) },
    { name: EVENTS_CASES.otelAttached, call: () => otelAttached.execute(op) },
    {
      name: EVENTS_CASES.otelAll,
      call: () => otelAllPipeline.execute(op),
      around: () => otelAll.attachAll(),
    },
    { name: EVENTS_CASES.producerAttached, call: () => producerAttached.execute(op) },
    {
      name: EVENTS_CASES.producerAll,
      call: () => producerAllPipeline.execute(op),
      around: () => producerAll.attachAll(),
    },
    { name: EVENTS_CASES.promAttached, call: () => promAttached.execute(op) },
    {
      name: EVENTS_CASES.promAll,
      call: () => promAllPipeline.execute(op),
      around: () => promAll.attachAll(),
    },
  ];
  const ns = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const over = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  try {
    for (let r = 0; r < s.rounds; r++) {
      const round = new Map<string, number>();
      for (const [ci, c] of roundOrder(cases, r).entries()) {
        progress(`${step} events: round ${r + 1}/${s.rounds}, ${ci + 1}/${cases.length} ${c.name}`);
        const off = c.around?.();
        try {
          round.set(c.name, (await nsPerCall(c.call, s)).p50);
        } finally {
          off?.();
        }
      }
      const base = round.get(EVENTS_CASES.none) as number;
      for (const [k, v] of round) {
        ns.get(k)?.push(v);
        over.get(k)?.push(v - base);
      }
    }
    if (count === 0) throw new Error('events suite: no event reached a listener');
    // The adapters must have recorded: a suite that measured a silently broken adapter would flatter it.
    const promText = await registry.metrics();
    for (const prefix of ['bulwark', 'all']) {
      if (!new RegExp(`^${prefix}_execution_duration_seconds_count\\{[^}]*\\} [1-9]`, 'm').test(promText)) {
        throw new Error(`events suite: prometheusMetrics (${prefix}) recorded no execution`);
      }
    }
    await reader.forceFlush();
    const names = new Set(
      exporter
        .getMetrics()
        .flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
        .filter((m) => m.dataPoints.length > 0)
        .map((m) => m.descriptor.name),
    );
    for (const name of [
      'bulwark.execution.duration',
      'all.execution.duration',
      'producer.execution.duration',
      'producer_all.execution.duration',
    ]) {
      if (!names.has(name)) throw new Error(`events suite: the OpenTelemetry adapters recorded no ${name}`);
    }
  } finally {
    otel.close();
    otelAll.close();
    producer.close();
    producerAll.close();
    prom.close();
    promAll.close();
    await provider.shutdown();
  }
  return cases.map((c) => ({
    case: c.name,
    ns: median(ns.get(c.name) as number[]),
    overNoListenerNs: median(over.get(c.name) as number[]),
  }));
}
