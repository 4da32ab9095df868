export * from './frames.ts';
export * from './labels.ts';
export * from './toolSpec.ts';
export * from './version.ts';
export * from './images.ts';
export * from './containerAudit.ts';
export * from './policy/index.ts';
