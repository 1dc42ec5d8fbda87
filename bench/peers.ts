/**
 * The peer libraries the bench compares with, per major version. cockatiel 3.2.1 and opossum 9.0.0 (pinned) run on
 * every Node; cockatiel 4 and opossum 10 (npm aliases `cockatiel4` and `opossum10`) need Node >= 22 and join them
 * there, so a run on Node 22+ compares bulwark with both majors of each in the same rounds.
 */
import * as cockatiel3 from 'cockatiel';
import opossum9 from 'opossum';

/** cockatiel's module; 4.0 keeps every API the bench uses (retry, circuitBreaker, timeout, bulkhead, wrap). */
export type Cockatiel = typeof cockatiel3;
/** opossum's CircuitBreaker class; 10.0 keeps the constructor, fire(), open() and shutdown() the bench uses. */
export type Opossum = typeof opossum9;

export interface Peer<T> {
  /** How the bench names it in tables: the library and its major, e.g. `cockatiel 4`. */
  readonly label: string;
  /** The package name in node_modules (an npm alias for the newer majors). */
  readonly pkg: string;
  readonly lib: T;
}

export interface Peers {
  readonly cockatiel: readonly Peer<Cockatiel>[];
  readonly opossum: readonly Peer<Opossum>[];
}

/** The Node major from which cockatiel 4 and opossum 10 run (both declare `engines: node >= 22`). */
export const NEWER_PEERS_FROM_NODE = 22;

export function nodeMajor(): number {
  return Number(process.versions.node.split('.')[0]);
}

/** Loads the peers this Node can run: the pinned majors always, the newer ones (dynamic imports) on Node >= 22. */
export async function loadPeers(): Promise<Peers> {
  const cockatiel: Peer<Cockatiel>[] = [{ label: 'cockatiel 3', pkg: 'cockatiel', lib: cockatiel3 }];
  const opossum: Peer<Opossum>[] = [{ label: 'opossum 9', pkg: 'opossum', lib: opossum9 }];
  if (nodeMajor() >= NEWER_PEERS_FROM_NODE) {
    // cockatiel 4's classes differ from 3's only in private members; the calls the bench makes are the same.
    const c4 = (await import('cockatiel4')) as unknown as Cockatiel;
    const o10 = (await import('opossum10')).default;
    cockatiel.push({ label: 'cockatiel 4', pkg: 'cockatiel4', lib: c4 });
    opossum.push({ label: 'opossum 10', pkg: 'opossum10', lib: o10 });
  }
  return { cockatiel, opossum };
}
