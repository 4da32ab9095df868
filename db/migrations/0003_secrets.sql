CREATE TABLE "secrets" (
	"name" text PRIMARY KEY NOT NULL,
	"nonce" text NOT NULL,
	"ciphertext" text NOT NULL,
	"key_id" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"size_bytes" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
