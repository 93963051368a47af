export { describePlan } from './describe-plan.ts';
export { formatFieldPath, formatPlanProblem, loadPlanFile, type PlanProblem, parsePlan } from './load-plan.ts';
export { describePartitionRef, partitionDevicePath } from './partition-name.ts';
export { type PartitionRef, type Plan, planSchema } from './plan-schema.ts';
export { planWarnings } from './plan-warnings.ts';
