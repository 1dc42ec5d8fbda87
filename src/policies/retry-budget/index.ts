export type { RetryBudgetOptions, RetryTokenBudgetOptions } from './options.js';
export { RetryBudget, RetryRatioBudget, RetryTokenBudget, retryBudget, retryTokenBudget } from './retry-budget.js';
