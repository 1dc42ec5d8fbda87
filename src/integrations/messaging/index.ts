/**
 * bulwark for message consumers: a broker-neutral handler wrapper that settles every delivery exactly once.
 * Broker adapters (RabbitMQ with amqplib; NATS JetStream with nats.js 2.x or 3.x) implement {@link Delivery}. No
 * broker client is imported, not even its types: install only the one you use.
 *
 * @example
 * ```ts
 * import { wrapHandler, PermanentError } from 'bulwark/messaging';
 * ```
 * @module bulwark/messaging
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
export type {
  JetStreamAdmin,
  JetStreamConsumer,
  JetStreamConsumerSettings,
  JetStreamMessage,
  JetStreamMessages,
  JetStreamPublisher,
  JetStreamStreamSettings,
  NatsHeaders,
} from './nats-types.js';
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
