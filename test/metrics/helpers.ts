import type { Meter } from '@opentelemetry/api';

export { captureWarnings } from '../helpers/warnings.js';

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
