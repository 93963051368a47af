export { ARMED_REPORT_PATH, partitionTableSha256 } from './armed-report-path.ts';
export { type ArmedRunReport, runArmed } from './armed-run.ts';
export { RUN_SCRATCH_FILES } from './capture-stage.ts';
export { Journal, type JournalRecord, type StageName } from './journal.ts';
export { createRunLog, type RunLog } from './run-log.ts';
export { type RunPlanOptions, type RunReport, runPlan, type StageReport } from './run-plan.ts';
export { formatRunSummary } from './run-summary.ts';
export { RECOVERY_INITRAMFS_TOOLS, RUNNER_TOOLS } from './runtime-tools.ts';
