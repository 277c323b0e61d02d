/** The store cannot be opened or is of an unknown schema. */
export class StoreError extends Error {
  override name = 'StoreError';
}
