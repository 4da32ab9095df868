/** The Engine API status code a dockerode error carries, if any (404 gone, 409 conflict, …). */
export const statusOf = (err: unknown): number | undefined => {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
};
