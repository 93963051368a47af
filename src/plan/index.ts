export { describePlan } from './describe-plan.ts';
export { imagePlanSnippet } from './image-plan-snippet.ts';
export { imageSizeNote } from './image-size-note.ts';
export {
  formatFieldPath,
  formatPlanProblem,
  loadPlanFile,
  type PlanProblem,
  parsePlan,
  readPlanFile,
} from './load-plan.ts';
export { describePartitionRef, partitionDevicePath } from './partition-name.ts';
export { type PartitionRef, type Plan, planSchema } from './plan-schema.ts';
export { planWarnings } from './plan-warnings.ts';
