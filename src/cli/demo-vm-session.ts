/** Moved to src/demo/demo-vm-session.ts (the demo orchestration lives in demo/); kept for old import paths. */
export * from '../demo/demo-vm-session.ts';
