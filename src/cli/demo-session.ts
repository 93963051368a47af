/** Moved to src/demo/demo-session.ts (the demo orchestration lives in demo/); kept for old import paths. */
export * from '../demo/demo-session.ts';
