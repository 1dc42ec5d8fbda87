/**
 * bulwark for message consumers: a broker-neutral handler wrapper that settles every delivery exactly once.
 * Broker adapters (RabbitMQ, NATS JetStream) implement {@link Delivery}.
 *
 * @example
 * ```ts
 * import { wrapHandler, PermanentError } from 'bulwark/messaging';
 * ```
 * @module
 */
export type { DeadLetter, Delivery } from './delivery.js';
export {
  type ConsumeJetStreamOptions,
  consumeJetStream,
  DeadLetterTooLargeError,
  isDeadLetterTooLargeError,
  JETSTREAM_DEAD_LETTER_HEADERS,
  type JetStreamClosed,
  type JetStreamCloseReason,
  type JetStreamConsumption,
  type JetStreamDeliveryOptions,
  jetstreamDelivery,
} from './nats.js';
export {
  declareJetStreamTopology,
  type JetStreamTopology,
  type JetStreamTopologyOptions,
} from './nats-topology.js';
export {
  type ConsumeRabbitOptions,
  consumeRabbit,
  DELIVERIES_HEADER,
  declareRabbitTopology,
  type RabbitChannel,
  type RabbitConsumer,
  type RabbitConsumerClosed,
  type RabbitMessage,
  type RabbitTopology,
  type RabbitTopologyOptions,
} from './rabbitmq.js';
export {
  type HandlerContext,
  type MessageHandler,
  PermanentError,
  type Settlement,
  type WrapHandlerOptions,
  type WrappedHandler,
  wrapHandler,
} from './wrap-handler.js';
