import type { Meter } from '@opentelemetry/api';

/** Collects process warnings until `stop()`. */
export function captureWarnings() {
  const seen: Error[] = [];
  const on = (w: Error) => seen.push(w);
  process.on('warning', on);
  return {
    codes: () => seen.map((w) => (w as Error & { code?: string }).code),
    messages: () => seen.map((w) => w.message),
    stop: () => process.off('warning', on),
    /** Warnings are emitted on the next tick: wait for them. */
    flush: () => new Promise<void>((r) => setImmediate(r)),
  };
}

/** A real meter whose counters and histograms throw on every measurement. */
export function failing(meter: Meter): Meter {
  const broken = () => {
    throw new Error('instrument broke');
  };
  return new Proxy(meter, {
    get(target, key, receiver) {
      if (key === 'createCounter' || key === 'createHistogram') return () => ({ add: broken, record: broken });
      const v = Reflect.get(target, key, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
