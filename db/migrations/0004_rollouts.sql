ALTER TABLE "deployments" ADD COLUMN "stable_version" integer;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rollout_from" integer;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rollout_to" integer;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rollout_state" text;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rollout_reason" text;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rollout_started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "deployments" ADD COLUMN "rollout_updated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "health" text;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "crash_loop" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "backoff_seconds" integer;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "last_exit_code" integer;--> statement-breakpoint
ALTER TABLE "instances" ADD COLUMN "running_since" timestamp with time zone;