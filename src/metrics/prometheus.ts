/**
 * Prometheus metrics for bulwark's policies, with prom-client (an optional peer dependency).
 *
 * @example
 * ```ts
 * import { prometheusMetrics } from 'bulwark/prometheus';
 * ```
 * @module bulwark/prometheus
 */
import { Gauge, type Metric, type Registry } from 'prom-client';
import { Checker } from '../errors/validate.js';
import { warnOnce } from '../events/emitter.js';
import {
  type CommonMetricsOptions,
  checkCommon,
  DEFAULT_DURATION_BUCKETS,
  type GaugeReading,
  MetricsHub,
  type PolicyMetrics,
} from './hub.js';
import { instruments } from './otel-model.js';
import { SeriesStore, StoredMetric, storeSink } from './series.js';

/** Options of {@link prometheusMetrics}. */
export interface PrometheusMetricsOptions extends CommonMetricsOptions {
  /**
   * The prom-client registry to register the metrics on. Required: bulwark registers nothing anywhere else (pass
   * prom-client's `register` to use the global registry).
   */
  registry: Registry;
  /** The prefix of every metric name. @defaultValue `'bulwark'` */
  prefix?: string;
  /**
   * The most label combinations kept per counter or histogram; past it, new combinations are counted in one
   * series labelled `overflow="true"` and a `BULWARK_METRICS_OVERFLOW` warning is emitted once per metric. It
   * bounds memory when a label is fed with unbounded values (an operation name holding a URL, a policy named
   * after an id). An integer >= 1 or `Infinity`. @defaultValue 2_000 (the OpenTelemetry SDK's default limit)
   */
  maxSeries?: number;
}

/**
 * Records bulwark's events as Prometheus metrics with prom-client (an optional peer dependency) on a registry you
 * pass. No default metrics, no global registry. The metrics (`<prefix>` is `bulwark`):
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `bulwark_events_total` | counter | policy, operation, event, error_type, reason |
 * | `bulwark_execution_duration_seconds` | histogram | policy, operation, result, error_type |
 * | `bulwark_attempt_duration_seconds` | histogram | policy, operation, result, error_type |
 * | `bulwark_circuit_breaker_state` | gauge | policy, state |
 * | `bulwark_bulkhead_active` / `_queued` / `_limit` | gauge | policy |
 * | `bulwark_rate_limit_available` / `_queued` / `_capacity` | gauge | policy |
 * | `bulwark_retry_budget_calls_in_flight` / `_retries_in_flight` / `_credit` | gauge | policy (the budget's name) |
 * | `bulwark_retry_budget_tokens` | gauge | policy (the budget's name) |
 * | `bulwark_adaptive_throttle_requests` / `_accepts` / `_rejection_probability` | gauge | policy |
 *
 * The gauges are read from the policies' state at each scrape, nothing per call: rate limiter tokens are computed
 * from the clock then, and an adaptive throttle's window moved to then. Retry budgets are found through the retry
 * and hedge policies in scope (with `attachAll()`, every live budget), each read once however many share it.
 *
 * `close()` detaches and removes these metrics from the registry. See docs/metrics.md for every label value.
 *
 * @throws InvalidOptionsError listing every invalid option, or when the registry already has a metric of one of
 * these names (a second adapter on the same registry needs another `prefix`).
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * import { prometheusMetrics } from 'bulwark/prometheus';
 *
 * const registry = new Registry();
 * prometheusMetrics({ registry }).attachAll();
 * app.get('/metrics', async (_req, res) => res.type(registry.contentType).send(await registry.metrics()));
 * ```
 */
export function prometheusMetrics(options: PrometheusMetricsOptions): PolicyMetrics {
  const check = new Checker('prometheusMetrics');
  if (options === undefined) check.fail('registry', undefined, 'a prom-client Registry');
  else if (check.object('', options, ['registry', 'prefix', 'errorType', 'durationBuckets', 'maxSeries'])) {
    check.number('maxSeries', options.maxSeries, { min: 1, integer: true, infinity: true });
    const { prefix: p } = options as { prefix?: unknown };
    const prefixOk = p === undefined || (check.string('prefix', p) && typeof p === 'string' && PREFIX.test(p));
    if (!prefixOk && typeof p === 'string' && p !== '') {
      check.fail('prefix', p, 'a metric name prefix like "bulwark" ([a-zA-Z_:][a-zA-Z0-9_:]*)');
    }
    const r = options.registry as Partial<Registry> | undefined;
    try {
      if (typeof r?.registerMetric !== 'function' || typeof r.getSingleMetric !== 'function') {
        check.fail('registry', r, "a prom-client Registry (new Registry(), or prom-client's register)");
      } else if (prefixOk) {
        // The names are only known, and only worth looking up, once the prefix is valid.
        for (const name of Object.values(metricNames((p as string | undefined) ?? 'bulwark'))) {
          if (r.getSingleMetric(name) !== undefined) {
            check.fail('registry', `a registry that has ${name}`, 'a registry without it (or another prefix)');
          }
        }
      }
    } catch {
      check.fail('registry', r, "a prom-client Registry (new Registry(), or prom-client's register)");
    }
    checkCommon(check, options);
  }
  check.done();

  const names = metricNames(options.prefix ?? 'bulwark');
  const registry = options.registry;
  const registers = [registry];
  const buckets = [...(options.durationBuckets ?? DEFAULT_DURATION_BUCKETS)];
  const maxSeries = options.maxSeries ?? 2_000;
  // Once per metric, also across registry resets (the owner object is the metric's, not the store's contents).
  const overflowed = (name: string) => {
    const owner = {};
    return () =>
      warnOnce(
        owner,
        `prometheusMetrics: ${name} reached maxSeries (${maxSeries}) label combinations; new ones are counted in its series overflow="true". A label is fed with unbounded values: use route templates as operation names (not URLs) and a bounded set of policy names`,
        'BulwarkMetricsWarning',
        'BULWARK_METRICS_OVERFLOW',
      );
  };
  const events = new SeriesStore(
    ['policy', 'operation', 'event', 'error_type', 'reason'],
    0,
    maxSeries,
    overflowed(names.events),
  );
  const durationStore = (name: string) =>
    new SeriesStore(['policy', 'operation', 'result', 'error_type', ''], buckets.length, maxSeries, overflowed(name));
  const executions = durationStore(names.execution);
  const attempts = durationStore(names.attempt);
  const durationLabels = ['policy', 'operation', 'result', 'error_type'];
  const register = (metric: StoredMetric): void => registry.registerMetric(metric as unknown as Metric);
  register(
    new StoredMetric(
      names.events,
      'Events of bulwark policies: retries, breaker transitions and rejections, timeouts, fallbacks.',
      ['policy', 'operation', 'event', 'error_type', 'reason'],
      events,
      undefined,
    ),
  );
  register(
    new StoredMetric(
      names.execution,
      'Duration of a call through a policy or pipeline, every attempt and backoff included.',
      durationLabels,
      executions,
      buckets,
    ),
  );
  register(
    new StoredMetric(
      names.attempt,
      'Duration of one attempt made by a retry policy.',
      durationLabels,
      attempts,
      buckets,
    ),
  );
  const hub = new MetricsHub('prometheusMetrics', storeSink(events, executions, attempts, buckets), options.errorType);

  // Gauges are read from the live policies at scrape time: nothing is recorded per call. Why one reading shared by
  // every gauge of a scrape: prom-client calls each gauge's collect() in turn, synchronously, when the registry is
  // read; reading every policy once (not once per gauge) costs a fifteenth, and the gauges of a scrape agree.
  let current: GaugeReading | undefined;
  const reading = (): GaugeReading => {
    if (current === undefined) {
      current = hub.read();
      queueMicrotask(() => {
        current = undefined;
      });
    }
    return current;
  };
  new Gauge({
    name: names.state,
    help: 'Circuit breakers of this name in this state (1 or 0 for a uniquely named breaker).',
    labelNames: ['policy', 'state'],
    registers,
    collect(): void {
      this.reset();
      for (const [policy, r] of reading().breakers) {
        this.set({ policy, state: 'closed' }, r.closed);
        this.set({ policy, state: 'open' }, r.open);
        this.set({ policy, state: 'half_open' }, r.half_open);
        this.set({ policy, state: 'isolated' }, r.isolated);
      }
    },
  });
  /** A gauge labelled by policy, set from one map of the reading. */
  const gauge = <R>(
    name: string,
    help: string,
    of: (r: GaugeReading) => Map<string, R>,
    value: (r: R) => number,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames: ['policy'],
      registers,
      collect(): void {
        this.reset();
        for (const [policy, r] of of(reading())) this.set({ policy }, value(r));
      },
    });
  };
  const bulkheads = (r: GaugeReading) => r.bulkheads;
  gauge(names.active, HELP.active, bulkheads, (r) => r.active);
  gauge(names.queued, HELP.queued, bulkheads, (r) => r.queued);
  gauge(names.limit, HELP.limit, bulkheads, (r) => r.limit);
  const rateLimits = (r: GaugeReading) => r.rateLimits;
  gauge(names.rateAvailable, HELP.rateAvailable, rateLimits, (r) => r.available);
  gauge(names.rateQueued, HELP.rateQueued, rateLimits, (r) => r.queued);
  gauge(names.rateCapacity, HELP.rateCapacity, rateLimits, (r) => r.capacity);
  const budgets = (r: GaugeReading) => r.retryBudgets;
  gauge(names.budgetCalls, HELP.budgetCalls, budgets, (r) => r.calls);
  gauge(names.budgetRetries, HELP.budgetRetries, budgets, (r) => r.retries);
  gauge(names.budgetCredit, HELP.budgetCredit, budgets, (r) => r.credit);
  gauge(
    names.budgetTokens,
    HELP.budgetTokens,
    (r) => r.tokenBudgets,
    (r) => r.tokens,
  );
  const throttles = (r: GaugeReading) => r.throttles;
  gauge(names.throttleRequests, HELP.throttleRequests, throttles, (r) => r.requests);
  gauge(names.throttleAccepts, HELP.throttleAccepts, throttles, (r) => r.accepts);
  gauge(names.throttleProbability, HELP.throttleProbability, throttles, (r) => r.probability);

  hub.onClose = () => {
    for (const name of Object.values(names)) registry.removeSingleMetric(name);
  };
  return hub;
}

/** The metric names for a (validated) prefix. */
function metricNames(prefix: string) {
  return {
    events: `${prefix}_events_total`,
    execution: `${prefix}_execution_duration_seconds`,
    attempt: `${prefix}_attempt_duration_seconds`,
    state: `${prefix}_circuit_breaker_state`,
    active: `${prefix}_bulkhead_active`,
    queued: `${prefix}_bulkhead_queued`,
    limit: `${prefix}_bulkhead_limit`,
    rateAvailable: `${prefix}_rate_limit_available`,
    rateQueued: `${prefix}_rate_limit_queued`,
    rateCapacity: `${prefix}_rate_limit_capacity`,
    budgetCalls: `${prefix}_retry_budget_calls_in_flight`,
    budgetRetries: `${prefix}_retry_budget_retries_in_flight`,
    budgetCredit: `${prefix}_retry_budget_credit`,
    budgetTokens: `${prefix}_retry_budget_tokens`,
    throttleRequests: `${prefix}_adaptive_throttle_requests`,
    throttleAccepts: `${prefix}_adaptive_throttle_accepts`,
    throttleProbability: `${prefix}_adaptive_throttle_rejection_probability`,
  };
}

/** The help text of each policy-labelled gauge: the OpenTelemetry descriptions, so the two cannot drift apart. */
const HELP = (() => {
  const i = instruments('bulwark');
  return {
    active: i.active.description,
    queued: i.queued.description,
    limit: i.limit.description,
    rateAvailable: i.rateAvailable.description,
    rateQueued: i.rateQueued.description,
    rateCapacity: i.rateCapacity.description,
    budgetCalls: i.budgetCalls.description,
    budgetRetries: i.budgetRetries.description,
    budgetCredit: i.budgetCredit.description,
    budgetTokens: i.budgetTokens.description,
    throttleRequests: i.throttleRequests.description,
    throttleAccepts: i.throttleAccepts.description,
    throttleProbability: i.throttleProbability.description,
  };
})();

const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]{0,62}$/;

export { type CommonMetricsOptions, defaultErrorType, type PolicyMetrics } from './hub.js';
