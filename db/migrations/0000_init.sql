CREATE TABLE "deployments" (
	"tool" text PRIMARY KEY NOT NULL,
	"replicas" integer NOT NULL,
	"version" integer,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"kind" text NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"target" text,
	"outcome" text NOT NULL,
	"reason" text,
	"data" jsonb
);
--> statement-breakpoint
CREATE TABLE "hosts" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text DEFAULT 'down' NOT NULL,
	"schedulable" boolean DEFAULT true NOT NULL,
	"capacity" jsonb DEFAULT '{"cpus":0,"memoryMb":0}'::jsonb NOT NULL,
	"applied_revision" bigint DEFAULT 0 NOT NULL,
	"last_seen_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "instances" (
	"id" text PRIMARY KEY NOT NULL,
	"tool" text NOT NULL,
	"version" integer NOT NULL,
	"kind" text DEFAULT 'replica' NOT NULL,
	"host_id" text,
	"desired" text DEFAULT 'running' NOT NULL,
	"revision" bigint NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"container_id" text,
	"running_version" integer,
	"exit_code" integer,
	"restarts" integer DEFAULT 0 NOT NULL,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "state_revision" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"value" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"role" text,
	"name" text,
	"host_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "tool_versions" (
	"tool" text NOT NULL,
	"version" integer NOT NULL,
	"spec" jsonb NOT NULL,
	"spec_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tool_versions_tool_version_pk" PRIMARY KEY("tool","version")
);
--> statement-breakpoint
CREATE TABLE "tools" (
	"name" text PRIMARY KEY NOT NULL,
	"current_version" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deployments" ADD CONSTRAINT "deployments_tool_tools_name_fk" FOREIGN KEY ("tool") REFERENCES "public"."tools"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tool_versions" ADD CONSTRAINT "tool_versions_tool_tools_name_fk" FOREIGN KEY ("tool") REFERENCES "public"."tools"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "events_at_idx" ON "events" USING btree ("at");--> statement-breakpoint
CREATE INDEX "hosts_name_idx" ON "hosts" USING btree ("name");--> statement-breakpoint
CREATE INDEX "instances_host_revision_idx" ON "instances" USING btree ("host_id","revision");--> statement-breakpoint
CREATE INDEX "instances_tool_idx" ON "instances" USING btree ("tool");--> statement-breakpoint
CREATE INDEX "tokens_host_idx" ON "tokens" USING btree ("host_id");