export { ChaosPolicy, injectBehavior, injectFault, injectLatency, injectOutcome } from './chaos.js';
export type { ChaosEvent } from './events.js';
export type {
  FaultValue,
  InjectBehaviorOptions,
  InjectFaultOptions,
  InjectionOptions,
  InjectLatencyOptions,
  InjectOutcomeOptions,
} from './options.js';
