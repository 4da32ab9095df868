export * from './deployments.ts';
export * from './events.ts';
export * from './hosts.ts';
export * from './instances.ts';
export * from './revision.ts';
export * from './tokens.ts';
export * from './tools.ts';
export * from './invocations.ts';
