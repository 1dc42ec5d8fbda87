// opossum 10 ships no type declarations; its API (as far as the bench uses it) is opossum 9's, typed by @types/opossum.
declare module 'opossum10' {
  import CircuitBreaker from 'opossum';
  export default CircuitBreaker;
}
