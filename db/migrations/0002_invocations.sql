CREATE TABLE "invocations" (
	"id" text PRIMARY KEY NOT NULL,
	"tool" text NOT NULL,
	"version" integer NOT NULL,
	"host_id" text,
	"status" text NOT NULL,
	"actor_token_id" text NOT NULL,
	"args" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"timeout_seconds" integer NOT NULL,
	"exit_code" integer,
	"stdout" text,
	"stderr" text,
	"truncated" boolean DEFAULT false NOT NULL,
	"duration_ms" integer,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "invocations_status_idx" ON "invocations" USING btree ("status","created_at");--> statement-breakpoint
CREATE INDEX "invocations_host_idx" ON "invocations" USING btree ("host_id","status");